"""Validation images every N steps: fixed prompts and seeds, one grid per step."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import atomic
from ..generate.sheet import contact_sheet


def validation_grid(pipe, prompts: list[str], seeds: list[int], *, resolution: int, steps: int, path: Path) -> Path:
    pipe.set_progress_bar_config(disable=True)
    images, labels = [], []
    with torch.no_grad():
        for prompt in prompts:
            for seed in seeds:
                image = pipe(
                    prompt,
                    num_inference_steps=steps,
                    height=resolution,
                    width=resolution,
                    generator=torch.Generator().manual_seed(seed),
                ).images[0]
                images.append(image)
                labels.append(f"seed {seed}: {prompt}")
    sheet = contact_sheet(images, labels, columns=len(seeds))
    with atomic.atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
