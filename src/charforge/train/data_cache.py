"""Training data as tensors: VAE latent distributions and prompt embeddings, computed once.

The reference DreamBooth script encodes every image with the VAE again at every step; with 3-10
images that is the same work hundreds of times. We store each image's latent *distribution* (mean
and std) and sample from it at every step, so the training signal is the same as re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

from ..data.buckets import make_buckets, nearest_bucket
from ..data.images import load_image, to_tensor
from ..models import latents
from ..models.adapters import FamilyAdapter, PromptEmbeds

Scale = float | torch.Tensor  # one number, or (C, 1, 1) per latent channel (a video VAE's mean / std)


@dataclass
class LatentSet:
    mean: list[torch.Tensor]  # one (C, h, w) per image; sizes differ between aspect buckets
    std: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.mean)

    def sample(self, index: torch.Tensor, generator: torch.Generator, scaling: Scale, shift: Scale = 0.0) -> torch.Tensor:
        mean = torch.stack([self.mean[int(i)] for i in index])
        std = torch.stack([self.std[int(i)] for i in index])
        noise = torch.randn(mean.shape, generator=generator)
        return (mean + std * noise - shift) * scaling


class PixelSet:
    """Uncached mode: images as pixels, VAE-encoded at every step (as the reference script does)."""

    def __init__(self, pixels: list[torch.Tensor], vae) -> None:
        self.pixels, self.vae = pixels, vae

    def __len__(self) -> int:
        return len(self.pixels)

    def sample(self, index: torch.Tensor, generator: torch.Generator, scaling: Scale, shift: Scale = 0.0) -> torch.Tensor:
        batch = torch.stack([self.pixels[int(i)] for i in index])
        with torch.no_grad():
            mean, std = latents.encode(self.vae, batch)
        noise = torch.randn(mean.shape, generator=generator)
        return ((mean.float() + std.float() * noise) - shift) * scaling


def training_size(image_size: tuple[int, int], resolution: int, step: int = 64) -> tuple[int, int]:
    """Square images train at ``resolution``; others (prepared with --buckets) at their nearest bucket,
    with sides in multiples of ``step`` (what the model family needs)."""
    w, h = image_size
    if w == h:
        return resolution, resolution
    return nearest_bucket(w / h, make_buckets(resolution, step=step))


def load_pixels(paths: list[Path], resolution: int, step: int = 64) -> list[torch.Tensor]:
    """(3, H, W) tensors in [-1, 1]. min_side=1: workspace images were validated by prepare, or we made them."""
    out = []
    for path in paths:
        image = load_image(path, min_side=1)
        size = training_size(image.size, resolution, step)
        out.append(to_tensor(ImageOps.fit(image, size, method=Image.Resampling.LANCZOS)))
    return out


def loss_weights(paths: list[Path], resolution: int, step: int, vae_scale: int, unmasked: float = 0.0) -> list[torch.Tensor]:
    """(1, h, w) latent-resolution weights per image for a masked loss: 1 on the subject, ``unmasked`` elsewhere.

    The subject is what differs from a flat background (``data.subject.silhouette``: holes inside the outline
    count), framed as :func:`load_pixels` frames the image; a latent cell counts when any of its pixels is
    subject, grown by one cell so outlines are learnt whole. A picture whose background is not flat has no mask
    that can be trusted: it keeps weight 1 everywhere.
    """
    import torch.nn.functional as F

    from ..data.subject import silhouette

    out = []
    for path in paths:
        image = load_image(path, min_side=1)
        fitted = ImageOps.fit(image, training_size(image.size, resolution, step), method=Image.Resampling.LANCZOS)
        shape = silhouette(fitted)
        latent = (fitted.height // vae_scale, fitted.width // vae_scale)
        if shape is None:
            out.append(torch.ones(1, *latent))
            continue
        mask = torch.from_numpy(shape).float()[None, None]
        cells = F.max_pool2d(F.adaptive_max_pool2d(mask, latent), 3, stride=1, padding=1)[0]
        out.append(unmasked + (1.0 - unmasked) * cells)
    return out


def same_size(pixels: list[torch.Tensor]) -> bool:
    return len({tuple(p.shape) for p in pixels}) == 1


@torch.no_grad()
def encode_latents(vae, pixels: list[torch.Tensor]) -> LatentSet:
    means, stds = [], []
    for image in pixels:
        mean, std = latents.encode(vae, image[None])
        means.append(mean[0].float().cpu())
        stds.append(std[0].float().cpu())
    return LatentSet(means, stds)


@torch.no_grad()
def encode_prompts(adapter: FamilyAdapter, prompts: list[str]) -> dict[str, PromptEmbeds]:
    unique = sorted(set(prompts))
    embeds = adapter.encode(adapter.tokenize(unique))
    return {prompt: embeds.row(i) for i, prompt in enumerate(unique)}
