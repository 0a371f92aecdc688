"""Training data as tensors: VAE latent distributions and prompt embeddings, computed once.

The reference DreamBooth script encodes every image with the VAE again at every step; with 3-10
images that is the same work hundreds of times. We store each image's latent *distribution* (mean
and std) and sample from it at every step, so the training signal is the same as re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.images import center_crop_resize, load_image, to_tensor
from ..models.adapters import FamilyAdapter, PromptEmbeds


@dataclass
class LatentSet:
    mean: torch.Tensor  # (N, 4, h, w)
    std: torch.Tensor  # (N, 4, h, w)

    def sample(self, index: torch.Tensor, generator: torch.Generator, scaling: float, shift: float = 0.0) -> torch.Tensor:
        noise = torch.randn(self.mean[index].shape, generator=generator)
        return (self.mean[index] + self.std[index] * noise - shift) * scaling


class PixelSet:
    """Uncached mode: images as pixels, VAE-encoded at every step (as the reference script does)."""

    def __init__(self, pixels: torch.Tensor, vae) -> None:
        self.pixels, self.vae = pixels, vae

    def sample(self, index: torch.Tensor, generator: torch.Generator, scaling: float, shift: float = 0.0) -> torch.Tensor:
        with torch.no_grad():
            dist = self.vae.encode(self.pixels[index].to(self.vae.device, self.vae.dtype)).latent_dist
        noise = torch.randn(dist.mean.shape, generator=generator)
        return ((dist.mean.float() + dist.std.float() * noise) - shift) * scaling


def load_pixels(paths: list[Path], resolution: int) -> torch.Tensor:
    # min_side=1: these are workspace images already validated by prepare, or class images we generated.
    return torch.stack([to_tensor(center_crop_resize(load_image(p, min_side=1), resolution)) for p in paths])


@torch.no_grad()
def encode_latents(vae, pixels: torch.Tensor, batch: int = 4) -> LatentSet:
    means, stds = [], []
    for start in range(0, len(pixels), batch):
        dist = vae.encode(pixels[start : start + batch].to(vae.device, vae.dtype)).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
    return LatentSet(torch.cat(means), torch.cat(stds))


@torch.no_grad()
def encode_prompts(adapter: FamilyAdapter, prompts: list[str]) -> dict[str, PromptEmbeds]:
    unique = sorted(set(prompts))
    embeds = adapter.encode(adapter.tokenize(unique))
    out = {}
    for i, prompt in enumerate(unique):
        pooled = None if embeds.pooled is None else embeds.pooled[i : i + 1].cpu()
        out[prompt] = PromptEmbeds(embeds.hidden[i : i + 1].cpu(), pooled)
    return out
