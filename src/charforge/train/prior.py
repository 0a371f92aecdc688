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


def class_images_key(base_source: str, prompt: str, resolution: int) -> str:
    return hashlib.sha256(f"{base_source}\n{prompt}\n{resolution}".encode()).hexdigest()[:12]


def ensure_class_images(
    pipe,
    cache_root: Path,
    *,
    base_source: str,
    prompt: str,
    count: int,
    resolution: int,
    steps: int,
    seed: int = 0,
    batch_size: int = 4,
    show_progress: bool = True,
) -> list[Path]:
    """Return ``count`` class images, generating only those not cached yet."""
    folder = cache_root / class_images_key(base_source, prompt, resolution)
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / "info.json"
    if not info.exists():
        atomic.write_text(info, json.dumps({"base": base_source, "prompt": prompt, "resolution": resolution}, indent=1))
    wanted = [folder / f"{i:05d}.png" for i in range(count)]
    missing = [p for p in wanted if not p.exists()]
    pipe.set_progress_bar_config(disable=True)
    with tqdm(total=len(missing), desc="class images", disable=not missing or not show_progress) as bar:
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            # Each image's seed depends on its index only, so a partial cache is filled identically.
            generators = [torch.Generator().manual_seed(seed + int(p.stem)) for p in chunk]
            with torch.no_grad():
                images = pipe(
                    [prompt] * len(chunk), num_inference_steps=steps, height=resolution, width=resolution, generator=generators
                ).images
            for path, image in zip(chunk, images, strict=True):
                with atomic.atomic_path(path) as tmp:
                    image.save(tmp, format="PNG")
            bar.update(len(chunk))
    return wanted
