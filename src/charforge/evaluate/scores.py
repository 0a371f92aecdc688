"""Per-image scores against the character's references.

- ``clip_i`` / ``dino``: mean cosine similarity of the image's embedding to every reference's
  (DreamBench's CLIP-I and DINO);
- ``clip_t``: cosine similarity of the image to its prompt with the identifier removed (CLIP-T);
- ``palette``: CIEDE2000 distance to the references' pooled palette (lower is closer);
- mini world: the judge's reading — ``identity`` (every identity attribute found), ``identity_share``
  (the share found) and ``fidelity`` (share of the prompt's asked attributes found).

Reference embeddings are cached per (encoder, reference contents) in the workspace's
``.cache/embeddings``, so evaluating many checkpoints or runs embeds the references once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from .. import atomic
from ..digest import file_digest
from .encoders import ClipEncoder, DinoEncoder, model_fingerprint
from .judging import Judging
from .palette import palette_distance_to, reference_palette
from .quality import judged_row


def open_rgb(path: Path) -> Image.Image:
    """A stored picture as RGB, with its file closed again."""
    with Image.open(path) as image:
        return image.convert("RGB")


@dataclass
class References:
    paths: list[Path]
    images: list[Image.Image]
    captions: list[str]  # identifier removed: what CLIP-T compares each reference with

    @classmethod
    def load(cls, paths: Sequence[Path], captions: Sequence[str]) -> References:
        return cls(list(paths), [open_rgb(p) for p in paths], list(captions))

    def digest(self) -> str:
        return hashlib.sha256("|".join(file_digest(p) for p in self.paths).encode()).hexdigest()[:16]


def cached_embeddings(cache_dir: Path, encoder: ClipEncoder | DinoEncoder, references: References) -> torch.Tensor:
    """The references' image embeddings under ``encoder``, computed once per encoder and reference set."""
    kind = type(encoder).__name__
    key = hashlib.sha256(f"{kind}|{model_fingerprint(encoder.source)}|{references.digest()}".encode()).hexdigest()[:20]
    path = cache_dir / f"{key}.safetensors"
    if path.is_file():
        try:
            return load_file(str(path))["embeddings"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    embeddings = encoder.images(references.images)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        save_file({"embeddings": embeddings.contiguous()}, str(tmp))
    return embeddings


def mean_similarity(embeddings: torch.Tensor, references: torch.Tensor) -> list[float]:
    """Each row's mean cosine similarity to every reference (embeddings are unit vectors)."""
    return (embeddings @ references.T).mean(dim=1).tolist()


def leave_one_out(references: torch.Tensor) -> list[float]:
    """Each reference's mean similarity to the *other* references (how typical it is of the set)."""
    n = len(references)
    if n < 2:
        return []
    sims = references @ references.T
    return ((sims.sum(dim=1) - sims.diagonal()) / (n - 1)).tolist()


@dataclass
class Scorer:
    """Everything that scores a picture, loaded once per evaluation."""

    references: References
    cache_dir: Path
    clip: ClipEncoder | None = None
    dino: DinoEncoder | None = None
    judge: Judging | None = None  # reads attributes back (a mini-world character)
    character: str | None = None  # the judged character's name in the judge's world
    _ref: dict[str, torch.Tensor] = field(default_factory=dict)
    _palette: list | None = None

    def reference_embeddings(self, name: str) -> torch.Tensor:
        if name not in self._ref:
            encoder = self.clip if name == "clip" else self.dino
            self._ref[name] = cached_embeddings(self.cache_dir, encoder, self.references)
        return self._ref[name]

    @property
    def palette(self) -> list:
        if self._palette is None:
            self._palette = reference_palette(self.references.images)
        return self._palette

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str], asked: Sequence[dict[str, str]]) -> list[dict]:
        """One dict of scores per image (``prompts``: identifier removed; ``asked``: judge requests)."""
        rows: list[dict] = [{} for _ in images]
        if self.clip is not None:
            embedded = self.clip.images(images)
            texts = self.clip.texts(list(prompts))
            for row, value in zip(rows, mean_similarity(embedded, self.reference_embeddings("clip")), strict=True):
                row["clip_i"] = value
            for row, value in zip(rows, (embedded * texts).sum(dim=1).tolist(), strict=True):
                row["clip_t"] = value
        if self.dino is not None:
            embedded = self.dino.images(images)
            for row, value in zip(rows, mean_similarity(embedded, self.reference_embeddings("dino")), strict=True):
                row["dino"] = value
        for row, image in zip(rows, images, strict=True):
            row["palette"] = palette_distance_to(image, self.palette)
        if self.judge is not None:
            self._judged(rows, images, asked)
        return rows

    def _judged(self, rows: list[dict], images: Sequence[Image.Image], asked: Sequence[dict[str, str]]) -> None:
        assert self.judge is not None
        for row, values, request in zip(rows, self.judge.read(list(images)), asked, strict=True):
            found = None if self.character is None else list(self.judge.identity(values, self.character).values())
            hits = [values[name] == value for name, value in self.judge.checkable(request).items()]
            row.update(judged_row(found, hits))
            row["judge"] = dict(values)
