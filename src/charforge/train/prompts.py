"""Which prompt each training image is trained with: its caption, or the instance prompt with the identifier.

Training encodes these, and the result's metadata counts their tags (kohya's ``ss_tag_frequency``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..config import TrainConfig
from ..errors import CharforgeError
from ..workspace import Workspace

log = logging.getLogger(__name__)


def instance_prompt(config: TrainConfig, workspace: Workspace) -> str:
    character = workspace.character
    return config.prompt(config.instance_prompt, character.token, character.class_word)


def training_prompts(config: TrainConfig, workspace: Workspace, images: list[Path], *, warn: bool = True) -> list[str]:
    """One prompt per image; with captions, an image without one falls back to the instance prompt."""
    fallback = instance_prompt(config, workspace)
    if not config.uses_captions:
        return [fallback] * len(images)
    captions = [workspace.caption_for(p) for p in images]
    missing = [p.name for p, c in zip(images, captions, strict=True) if c is None]
    if missing and warn:
        log.warning("no caption for %d image(s) (%s); using the instance prompt for them", len(missing), ", ".join(missing[:3]))
    prompts = [c or fallback for c in captions]
    if config.method != "lora":
        _check_token_in_captions(workspace, images, prompts, workspace.character.token)
    return prompts


def _check_token_in_captions(workspace: Workspace, images: list[Path], prompts: list[str], token: str) -> None:
    """DreamBooth binds the character to its token; a caption without it would teach the class word instead."""
    for image, prompt in zip(images, prompts, strict=True):
        if not re.search(rf"(?<!\w){re.escape(token)}(?!\w)", prompt):
            raise CharforgeError(
                f"{workspace.captions_dir / (image.stem + '.txt')}: the caption does not name the token {token!r}; "
                f"add it (e.g. '{token} girl, ...') or train without --captions"
            )
