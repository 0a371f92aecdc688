"""A VAE's latents as the denoiser was trained on them.

Image VAEs (SD, SDXL, SD3, FLUX.1) give (C, h, w) latents, normalised by one scale and shift; Qwen-Image's VAE is a
video VAE (``AutoencoderKLQwenImage``: pictures go in as one-frame clips, (C, 1, h, w)) normalised per channel by
its ``latents_mean`` / ``latents_std``, as ``QwenImagePipeline`` and diffusers' Qwen-Image script do. FLUX.2's VAE
(``AutoencoderKLFlux2``) is read in 2x2 patches folded into the channels, (4C, h/2, w/2), each channel normalised by
the running statistics of the VAE's own batch norm, as ``Flux2KleinPipeline`` and diffusers' FLUX.2 klein script do:
there the latent grid is 16 pixels a cell, not 8. Training keeps every latent as (C, h, w) in the space the denoiser
reads, and the family's adapter adds the frame axis or packs the sequence where its denoiser wants one.
"""

from __future__ import annotations

import torch


def is_video_vae(vae) -> bool:
    return getattr(vae.config, "latents_mean", None) is not None and hasattr(vae.config, "temperal_downsample")


def is_patchified(vae) -> bool:
    """FLUX.2's VAE: its latents are read in 2x2 patches, normalised by its batch norm's running statistics."""
    return hasattr(vae, "bn") and hasattr(vae.config, "batch_norm_eps")


def encode(vae, pixels: torch.Tensor):
    """The latent distribution of a (B, 3, H, W) batch in [-1, 1], as (B, C, h, w) ``mean`` and ``std`` in the layout
    the denoiser reads (a patch is a fixed rearrangement, so a sample of the patched distribution is the patched
    sample)."""
    video = is_video_vae(vae)
    dist = vae.encode((pixels[:, :, None] if video else pixels).to(vae.device, vae.dtype)).latent_dist
    mean, std = dist.mean, dist.std
    if video:
        return mean[:, :, 0], std[:, :, 0]
    if is_patchified(vae):  # (B, 4C, h/2, w/2): each 2x2 patch's values in the channels, as the pipeline folds them
        from diffusers import Flux2KleinPipeline

        return Flux2KleinPipeline._patchify_latents(mean), Flux2KleinPipeline._patchify_latents(std)
    return mean, std


def normalisation(vae) -> tuple[float | torch.Tensor, float | torch.Tensor]:
    """``(shift, scaling)``: what the denoiser sees is ``(latent - shift) * scaling`` (per channel for a video VAE and
    for FLUX.2's batch-normed patches)."""
    config = vae.config
    if is_video_vae(vae):
        mean = torch.tensor(config.latents_mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(config.latents_std, dtype=torch.float32).view(-1, 1, 1)
        return mean, 1.0 / std
    if is_patchified(vae):
        mean = vae.bn.running_mean.detach().float().cpu().view(-1, 1, 1)
        std = torch.sqrt(vae.bn.running_var.detach().float().cpu().view(-1, 1, 1) + config.batch_norm_eps)
        return mean, 1.0 / std
    return float(getattr(config, "shift_factor", None) or 0.0), float(config.scaling_factor)


def cell_size(pipe) -> int:
    """Pixels per side of one cell of the latent grid the denoiser reads: the VAE's factor, twice that for FLUX.2."""
    return pipe.vae_scale_factor * (2 if is_patchified(pipe.vae) else 1)
