"""Sampler names users know (A1111's), mapped to diffusers schedulers and their options."""

from __future__ import annotations

from ..errors import CharforgeError

# name -> (A1111 label, diffusers class name, extra config)
SAMPLERS: dict[str, tuple[str, str, dict]] = {
    "dpm++2m": ("DPM++ 2M", "DPMSolverMultistepScheduler", {}),
    "dpm++2m-karras": ("DPM++ 2M Karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "euler": ("Euler", "EulerDiscreteScheduler", {}),
    "euler-a": ("Euler a", "EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIM", "DDIMScheduler", {}),
    "pndm": ("PLMS", "PNDMScheduler", {}),
    "unipc": ("UniPC", "UniPCMultistepScheduler", {}),
    "heun": ("Heun", "HeunDiscreteScheduler", {}),
    "dpm2": ("DPM2", "KDPM2DiscreteScheduler", {}),
}
DEFAULT_SAMPLER = "dpm++2m"


def make_scheduler(name: str, base_config):
    """A fresh scheduler ``name`` built from the base model's scheduler config (betas, prediction type)."""
    import diffusers

    if name not in SAMPLERS:
        raise CharforgeError(f"--sampler {name!r} is unknown; choose from: {', '.join(SAMPLERS)}")
    _label, class_name, extra = SAMPLERS[name]
    return getattr(diffusers, class_name).from_config(base_config, **extra)


def sampler_label(name: str) -> str:
    return SAMPLERS[name][0]


# A1111 1.9+ writes the noise schedule apart from the sampler ("Sampler: DPM++ 2M, Schedule type: Karras"). Its
# k-diffusion samplers draw on a schedule chosen apart; "Uniform" is the one of diffusers' evenly spaced timesteps.
# DDIM, PLMS and UniPC carry their own schedule there, so they get none.
_K_SAMPLERS = {"DPM++ 2M", "Euler", "Euler a", "Heun", "DPM2"}


def a1111_sampler(label: str) -> tuple[str, str]:
    """(A1111's "Sampler", its "Schedule type" or "") for one of our labels."""
    if label.endswith(" Karras"):
        return label.removesuffix(" Karras"), "Karras"
    return label, "Uniform" if label in _K_SAMPLERS else ""


def label_from_a1111(sampler: str, schedule: str) -> str:
    """Our label for A1111's pair (``a1111_sampler`` reversed); other programs' names pass through unchanged."""
    combined = f"{sampler} {schedule}"
    return combined if schedule == "Karras" and any(combined == v[0] for v in SAMPLERS.values()) else sampler
