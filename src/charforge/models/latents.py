"""A VAE's latents as the denoiser was trained on them.

Image VAEs (SD, SDXL, SD3, FLUX) give (C, h, w) latents, normalised by one scale and shift; Qwen-Image's VAE is a
video VAE (``AutoencoderKLQwenImage``: pictures go in as one-frame clips, (C, 1, h, w)) normalised per channel by
its ``latents_mean`` / ``latents_std``, as ``QwenImagePipeline`` and diffusers' Qwen-Image script do. Training keeps
every latent as (C, h, w) and the family's adapter adds the frame axis where its denoiser wants one.
"""

from __future__ import annotations

import torch


def is_video_vae(vae) -> bool:
    return getattr(vae.config, "latents_mean", None) is not None and hasattr(vae.config, "temperal_downsample")


def encode(vae, pixels: torch.Tensor):
    """The latent distribution of a (B, 3, H, W) batch in [-1, 1], as (B, C, h, w) ``mean`` and ``std``."""
    video = is_video_vae(vae)
    dist = vae.encode((pixels[:, :, None] if video else pixels).to(vae.device, vae.dtype)).latent_dist
    mean, std = dist.mean, dist.std
    return (mean[:, :, 0], std[:, :, 0]) if video else (mean, std)


def normalisation(vae) -> tuple[float | torch.Tensor, float | torch.Tensor]:
    """``(shift, scaling)``: what the denoiser sees is ``(latent - shift) * scaling`` (per channel for a video VAE)."""
    config = vae.config
    if is_video_vae(vae):
        mean = torch.tensor(config.latents_mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(config.latents_std, dtype=torch.float32).view(-1, 1, 1)
        return mean, 1.0 / std
    return float(getattr(config, "shift_factor", None) or 0.0), float(config.scaling_factor)
