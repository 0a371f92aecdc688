"""Class images for prior preservation, generated once with the base model and cached.

The cache key is the base model, the class prompt and the resolution, so changing any of them
produces a new set while re-running the same training reuses the images already made.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import atomic
from ..generate.text2image import guidance_arguments, own_guidance


def class_images_key(base_source: str, prompt: str, resolution: int) -> str:
    return hashlib.sha256(f"{base_source}\n{prompt}\n{resolution}".encode()).hexdigest()[:12]


def share_out(count: int, parts: int) -> list[int]:
    """``count`` split into ``parts`` near-equal whole shares (the first ones get the remainder)."""
    return [count // parts + (k < count % parts) for k in range(parts)]


def ensure_class_images(
    pipe,
    cache_root: Path,
    *,
    base_source: str,
    prompts: list[str],
    count: int,
    resolution: int,
    steps: int,
    seed: int = 0,
    batch_size: int = 4,
    show_progress: bool = True,
) -> list[tuple[Path, str]]:
    """Return ``count`` class images with their prompts, shared out among ``prompts``; only missing ones are drawn.

    Several prompts let the class images cover the scenes the instance captions describe, so the
    prior the model keeps is "a girl, side view, ..." and not only the bare class prompt.
    """
    wanted: list[tuple[Path, str]] = []
    for prompt, share in zip(prompts, share_out(count, len(prompts)), strict=True):
        if not share:  # more prompts than images: the last ones get none
            continue
        folder = cache_root / class_images_key(base_source, prompt, resolution)
        folder.mkdir(parents=True, exist_ok=True)
        info = folder / "info.json"
        if not info.exists():
            atomic.write_text(info, json.dumps({"base": base_source, "prompt": prompt, "resolution": resolution}, indent=1))
        wanted += [(folder / f"{i:05d}.png", prompt) for i in range(share)]
    missing = [(p, prompt) for p, prompt in wanted if not p.exists()]
    pipe.set_progress_bar_config(disable=True)
    with tqdm(total=len(missing), desc="class images", disable=not missing or not show_progress) as bar:
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            # Each image's seed depends on its index only, so a partial cache is filled identically.
            generators = [torch.Generator().manual_seed(seed + int(p.stem)) for p, _ in chunk]
            with torch.no_grad():
                images = pipe(
                    prompt=[prompt for _, prompt in chunk],
                    num_inference_steps=steps,
                    height=resolution,
                    width=resolution,
                    generator=generators,
                    **guidance_arguments(pipe, own_guidance(pipe), "", len(chunk)),
                ).images
            for (path, _), image in zip(chunk, images, strict=True):
                with atomic.atomic_path(path) as tmp:
                    image.save(tmp, format="PNG")
            bar.update(len(chunk))
    return wanted
