"""What the denoiser learns to predict, per family: the loop asks an objective for noise levels, noisy latents and
the target, and never which family it trains.

* :class:`NoisePrediction` (SD1.x, SD2.x, SDXL): DDPM, a uniformly drawn timestep, the noise (epsilon) or the
  velocity (v-prediction, SD2-768) as the target, optional Min-SNR weighting (Hang et al. 2023).
* :class:`FlowMatching` (SD3/3.5): a rectified flow. The latent at noise level sigma is ``(1 - sigma) x + sigma n``
  and the target is the velocity ``n - x``; sigma is drawn logit-normal (SD3 paper §3.1, ``logit_normal``),
  uniform or by the "mode" density, and shifted by the model's own scheduler (``shift`` 3.0 for SD3), all through
  diffusers' ``compute_density_for_timestep_sampling`` and the model's ``FlowMatchEulerDiscreteScheduler`` table,
  as diffusers' DreamBooth scripts draw them. The velocity target is that of diffusers' FLUX script, kohya's SD3
  and ai-toolkit; diffusers' SD3 script by default preconditions the output instead, which is the same loss
  weighted by sigma squared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import CharforgeError

TimestepSampling = str  # "logit_normal" | "mode" | "uniform"


@dataclass
class NoisedBatch:
    noisy: torch.Tensor  # what the denoiser sees
    timesteps: torch.Tensor  # (B,): what the denoiser is told
    target: torch.Tensor  # what it should output


class NoisePrediction:
    """DDPM: epsilon or v as the model's scheduler config says."""

    def __init__(self, scheduler_config: Any, sampling: TimestepSampling | None = None) -> None:
        from diffusers import DDPMScheduler

        if sampling not in (None, "uniform"):
            raise CharforgeError(f"--timestep-sampling {sampling} is for flow-matching models; this one samples uniformly")
        self.scheduler = DDPMScheduler.from_config(scheduler_config)

    @property
    def v_prediction(self) -> bool:
        return self.scheduler.config.prediction_type == "v_prediction"

    def noised(self, latents: torch.Tensor, noise: torch.Tensor, generator: torch.Generator) -> NoisedBatch:
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
        target = self.scheduler.get_velocity(latents, noise, timesteps) if self.v_prediction else noise
        return NoisedBatch(self.scheduler.add_noise(latents, noise, timesteps), timesteps, target)

    def check(self, snr_gamma: float | None) -> None:
        """Options that do not apply to this objective are refused (none here)."""

    def min_snr_weight(self, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
        """Min-SNR-gamma per sample (arXiv:2303.09556), for epsilon or v targets."""
        from diffusers.training_utils import compute_snr

        snr = compute_snr(self.scheduler, timesteps)
        return torch.clamp(snr, max=gamma) / (snr + 1 if self.v_prediction else snr)


class FlowMatching:
    """Rectified flow with the model's shifted sigma table (SD3/3.5)."""

    def __init__(self, scheduler_config: Any, sampling: TimestepSampling | None = None) -> None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)
        self.sampling = sampling or "logit_normal"
        self.logit_mean, self.logit_std, self.mode_scale = 0.0, 1.0, 1.29  # diffusers' scripts' defaults

    def noised(self, latents: torch.Tensor, noise: torch.Tensor, generator: torch.Generator) -> NoisedBatch:
        from diffusers.training_utils import compute_density_for_timestep_sampling

        u = compute_density_for_timestep_sampling(
            self.sampling,
            latents.shape[0],
            logit_mean=self.logit_mean,
            logit_std=self.logit_std,
            mode_scale=self.mode_scale,
            generator=generator,
        )
        indices = (u * self.scheduler.config.num_train_timesteps).long().clamp(max=len(self.scheduler.timesteps) - 1)
        timesteps = self.scheduler.timesteps[indices]
        sigmas = self.scheduler.sigmas[indices].to(latents.dtype).view(-1, *[1] * (latents.ndim - 1))
        return NoisedBatch((1.0 - sigmas) * latents + sigmas * noise, timesteps, noise - latents)

    def check(self, snr_gamma: float | None) -> None:
        if snr_gamma:
            raise CharforgeError(
                "--snr-gamma (Min-SNR) weights a DDPM noise prediction by its signal-to-noise ratio; this model is a "
                "rectified flow, whose noise levels are drawn by --timestep-sampling instead: drop --snr-gamma"
            )


def objective_for(flow_matching: bool, scheduler_config: Any, sampling: TimestepSampling | None = None):
    return (FlowMatching if flow_matching else NoisePrediction)(scheduler_config, sampling)
