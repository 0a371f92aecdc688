"""Frozen parts off the accelerator while the loop does not need them.

Once the prompts' embeddings are cached, a frozen text encoder is used only to draw (validation grids, the
``--eval-every`` scoring, the final samples); once the pictures' latents are cached, the same holds for the VAE. The
large ones are most of a transformer family's frozen weights (T5-XXL 4.8B of FLUX.1's 17B, Qwen3-4B of Z-Image's
10B), so they wait in CPU memory between draws, as diffusers' DreamBooth scripts and ai-toolkit free them once
cached. On a CPU-only run there is nowhere else to put them, and nothing moves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

PARK = torch.device("cpu")


class Parking:
    """``modules`` wait on the CPU (:meth:`park`) and come back to ``device`` while the loop draws (:meth:`back`)."""

    def __init__(self, modules: Sequence[torch.nn.Module], device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.modules = list(modules) if self.device != PARK else []
        self.parked = False

    def park(self) -> None:
        if self.modules and not self.parked:
            for module in self.modules:
                module.to(PARK)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # hand the freed blocks back, so the peak the user sees falls too
            self.parked = True

    def unpark(self) -> None:
        """Every module back on the device, for good (the run's end: the result is written from the device)."""
        if self.parked:
            for module in self.modules:
                module.to(self.device)
            self.parked = False

    @contextmanager
    def back(self) -> Iterator[None]:
        """The modules on the device for the block's drawing, parked again after it."""
        was_parked = self.parked
        self.unpark()
        try:
            yield
        finally:
            if was_parked:
                self.park()


def frozen_after_caching(pipe, text_encoders: Sequence[torch.nn.Module], trained: Sequence[torch.nn.Module], *,
                         embeddings_cached: bool, latents_cached: bool) -> list[torch.nn.Module]:  # fmt: skip
    """What the loop no longer needs once its inputs are cached: the frozen text encoders when the prompts'
    embeddings are, the VAE when the latents are (a trained module, or one whose identifier rows train, stays)."""
    out = [e for e in text_encoders if embeddings_cached and not any(e is t for t in trained)]
    if latents_cached and getattr(pipe, "vae", None) is not None:
        out.append(pipe.vae)
    return out
