"""Validation images every N steps: fixed prompts and seeds, one grid per step."""

from __future__ import annotations

from pathlib import Path

from .. import atomic
from ..generate.sheet import contact_sheet
from ..generate.text2image import draw_batch


def validation_grid(
    pipe, prompts: list[str], seeds: list[int], *, resolution: int, steps: int, guidance: float, path: Path
) -> Path:
    """Every prompt at every seed, drawn as ``charforge generate`` draws them (one pass per prompt, the model's
    recommended guidance), in one grid a row per prompt."""
    pipe.set_progress_bar_config(disable=True)
    images, labels = [], []
    for prompt in prompts:
        images += draw_batch(
            pipe, [prompt] * len(seeds), list(seeds), steps=steps, guidance=guidance, width=resolution, height=resolution
        )
        labels += [f"seed {seed}: {prompt}" for seed in seeds]
    sheet = contact_sheet(images, labels, columns=len(seeds))
    with atomic.atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
