"""Captions: one editable ``captions/NAME.txt`` per training image, written by a captioner.

Captioners share one call: ``captioner(images) -> list[str]``. The template captioner needs no model
and is the DreamBooth default ("a picture of {token} {class_word}"); BLIP, BLIP-2 and Florence-2 run
through ``transformers`` for per-image captions (the ``lora`` method and style training).

Captions a person edited are never overwritten without ``overwrite``: we remember a hash of every
caption we wrote (``captions/.generated.json``) and leave alone any file whose text differs from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .. import atomic
from ..errors import CharforgeError
from ..workspace import Workspace
from .images import load_image

GENERATED_FILE = ".generated.json"
METADATA_FILE = "metadata.jsonl"
# name -> (model class in transformers, default model id, task prompt or None)
MODEL_CAPTIONERS: dict[str, tuple[str, str, str | None]] = {
    "blip": ("BlipForConditionalGeneration", "Salesforce/blip-image-captioning-large", None),
    "blip2": ("Blip2ForConditionalGeneration", "Salesforce/blip2-opt-2.7b", None),
    "florence2": ("Florence2ForConditionalGeneration", "florence-community/Florence-2-base", "<MORE_DETAILED_CAPTION>"),
}
# Captioners other packages provide, by name (the mini world registers "world", which reads each drawing's scene
# with its judge): the factory takes (template or None, token, class word).
_REGISTERED: dict[str, Callable[[str | None, str, str], Captioner]] = {}


def register_captioner(name: str, factory: Callable[[str | None, str, str], Captioner]) -> None:
    _REGISTERED[name] = factory


def captioner_names() -> list[str]:
    return ["template", *MODEL_CAPTIONERS, *_REGISTERED]


# Nouns a captioner may use for a character; "replace" mode puts the token in front of the first one.
_SUBJECT_NOUNS = (
    "girl",
    "woman",
    "boy",
    "man",
    "person",
    "child",
    "kid",
    "character",
    "cartoon",
    "figure",
    "animal",
    "dog",
    "cat",
    "creature",
    "robot",
)

Captioner = Callable[[list[Image.Image]], list[str]]


@dataclass
class TemplateCaptioner:
    template: str = "a picture of {token} {class_word}"
    token: str = ""
    class_word: str = ""

    def __call__(self, images: list[Image.Image]) -> list[str]:
        return [self.template.format(token=self.token, class_word=self.class_word) for _ in images]


class TransformersCaptioner:
    """BLIP / BLIP-2 / Florence-2 (or any compatible model id or local folder) through transformers."""

    def __init__(self, kind: str, model: str | None = None, *, max_new_tokens: int = 60, batch_size: int = 4) -> None:
        import transformers

        class_name, default_id, self.prompt = MODEL_CAPTIONERS[kind]
        self.model_id = model or default_id
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        from ..models.hub import local_files_only

        local = local_files_only(
            self.model_id, what=f"--captioner {kind}", instead="pass --model with a local folder, or --captioner template"
        )
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(self.model_id, local_files_only=local)
            self.model = getattr(transformers, class_name).from_pretrained(
                self.model_id, use_safetensors=True, local_files_only=local
            )
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise CharforgeError(
                f"captioner {kind}: could not load {self.model_id!r} ({first}); pass --model with a local folder or a hub id"
            ) from exc
        self.model.eval()

    def __call__(self, images: list[Image.Image]) -> list[str]:
        import torch

        captions = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            kwargs = {"text": [self.prompt] * len(batch)} if self.prompt else {}
            inputs = self.processor(images=batch, return_tensors="pt", **kwargs)
            with torch.no_grad():
                out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False)
            texts = self.processor.batch_decode(out, skip_special_tokens=True)
            captions.extend(_clean(t, self.prompt) for t in texts)
        return captions


def _clean(text: str, prompt: str | None) -> str:
    if prompt:
        text = text.replace(prompt, "")
    return re.sub(r"\s+", " ", text).strip().rstrip(".")


def make_captioner(name: str, workspace: Workspace, *, model: str | None = None, template: str | None = None) -> Captioner:
    if name == "template":
        return TemplateCaptioner(
            template or TemplateCaptioner.template, workspace.character.token, workspace.character.class_word
        )
    if name in _REGISTERED:
        return _REGISTERED[name](template, workspace.character.token, workspace.character.class_word)
    if name not in MODEL_CAPTIONERS:
        raise CharforgeError(f"--captioner {name!r} is unknown; choose from: {', '.join(captioner_names())}")
    return TransformersCaptioner(name, model)


def insert_token(caption: str, token: str, class_word: str, mode: str = "prefix", style: str | None = None) -> str:
    """Put the identifier into a model's caption consistently.

    ``prefix``: "UnicornGirl girl, a cartoon of ..."; ``replace``: the first subject noun becomes
    "UnicornGirl <noun>" ("a cartoon of a UnicornGirl girl with pink hair"), falling back to prefix.
    ``style`` is appended to every caption (as in "..., drawn by KSH drawing style").
    """
    caption = caption.strip().rstrip(".")
    if token and token not in caption.split():
        if mode == "replace":
            count = 0
            for nouns in ((class_word,), _SUBJECT_NOUNS):  # the class word wins over any other noun
                pattern = re.compile(rf"\b({'|'.join(map(re.escape, nouns))})\b", re.IGNORECASE)
                caption, count = pattern.subn(lambda m: f"{token} {m.group(1)}", caption, count=1)
                if count:
                    break
            if not count:
                caption = f"{token} {class_word}, {caption}"
        elif mode == "prefix":
            caption = f"{token} {class_word}, {caption}" if caption else f"{token} {class_word}"
        else:
            raise CharforgeError(f"--token-mode {mode!r} is unknown; use prefix or replace")
    if style and not caption.endswith(style):
        caption = f"{caption}, {style}"
    return caption


@dataclass
class CaptionReport:
    written: dict[str, str] = field(default_factory=dict)  # image name -> caption
    kept: list[str] = field(default_factory=list)  # hand-edited captions left alone
    metadata: Path | None = None


def _digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def caption_workspace(
    workspace: Workspace,
    captioner: Captioner,
    *,
    token_mode: str = "prefix",
    style: str | None = None,
    overwrite: bool = False,
) -> CaptionReport:
    """Caption every training image; keeps hand-edited captions; writes ``images/metadata.jsonl``."""
    images = workspace.training_images()
    folder = workspace.captions_dir
    folder.mkdir(parents=True, exist_ok=True)
    record_path = folder / GENERATED_FILE
    record: dict[str, str] = json.loads(record_path.read_text(encoding="utf-8")) if record_path.exists() else {}
    report = CaptionReport()
    todo = []
    for path in images:
        existing = folder / f"{path.stem}.txt"
        if existing.exists() and not overwrite and record.get(path.stem) != _digest(existing.read_text(encoding="utf-8")):
            report.kept.append(path.name)
        else:
            todo.append(path)
    character = workspace.character
    # An augmented copy (flip, jitter, zoom-out) shows what its source shows, so it takes the source's caption (kohya
    # does the same): captioned on its own, a shrunk copy was misread (a side view as "jumping", a smile as "sad"),
    # and the identifier learnt those words from the references.
    sources = workspace.copy_sources()
    copies = [p for p in todo if p.stem in sources]
    originals = [p for p in todo if p.stem not in sources]

    def write(path: Path, caption: str) -> None:
        atomic.write_text(folder / f"{path.stem}.txt", caption + "\n")
        record[path.stem] = _digest(caption)
        report.written[path.name] = caption

    if originals:
        texts = captioner([load_image(p, min_side=1) for p in originals])
        for path, text in zip(originals, texts, strict=True):
            write(path, insert_token(text, character.token, character.class_word, token_mode, style))
    grounds = workspace.copy_backgrounds()
    for path in copies:  # every source is captioned by now: just now, or earlier (and kept)
        text = (folder / f"{sources[path.stem]}.txt").read_text(encoding="utf-8").strip()
        write(path, with_background(text, grounds[path.stem]) if path.stem in grounds else text)
    if todo:
        atomic.write_text(record_path, json.dumps(record, indent=1, sort_keys=True))
    report.metadata = write_metadata(workspace)
    return report


_ON_BACKGROUND = re.compile(r"\s*\b(?:on|in front of|against)\s+(?:an?\s+|the\s+)?[\w\s-]*?\bbackground\b")


def with_background(caption: str, words: str) -> str:
    """The caption of a copy on a new background: its source's, saying the new ground instead of the old one
    ("..., white background" -> "..., blue sky background"; "sks girl on a white background" -> "sks girl, ...")."""
    parts = []
    for part in caption.rstrip(" .").split(","):
        part = _ON_BACKGROUND.sub("", part)
        if part.strip() and "background" not in part:
            parts.append(part.strip())
    return ", ".join([*parts, f"{words} background"])


def write_metadata(workspace: Workspace) -> Path:
    """``images/metadata.jsonl`` ({"file_name", "text"} per line): the Hugging Face imagefolder format."""
    lines = []
    for path in workspace.training_images():
        text = workspace.caption_for(path)
        if text is not None:
            lines.append(json.dumps({"file_name": path.name, "text": text}, ensure_ascii=False))
    target = workspace.images_dir / METADATA_FILE
    atomic.write_text(target, "\n".join(lines) + ("\n" if lines else ""))
    return target
