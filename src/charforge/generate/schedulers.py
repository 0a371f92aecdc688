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
# A flow-matching model (SD3) is sampled along its own shifted sigmas: the flow-matching Euler/Heun schedulers, or the
# multistep solvers that diffusers runs on flow sigmas (ComfyUI's DPM++ 2M and UniPC on SD3 do the same). The DDPM
# samplers (ancestral, DDIM, PLMS, DPM2, Karras sigmas) assume betas these models do not have.
_FLOW: dict[str, tuple[str, dict]] = {
    "dpm++2m": ("DPMSolverMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}),
    "unipc": ("UniPCMultistepScheduler", {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}),
    "euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "heun": ("FlowMatchHeunDiscreteScheduler", {}),
}


# The flow samplers that can start part-way (image-to-image, inpainting): diffusers noises the picture with their
# ``scale_noise``, which the multistep solvers lack.
_FLOW_EDIT = ("euler", "heun")


# Pipelines that hand the scheduler their own sigmas (Z-Image, FLUX.2 klein), which only the flow Euler sampler takes.
OWN_SIGMAS = {
    "ZImagePipeline",
    "ZImageImg2ImgPipeline",
    "ZImageInpaintPipeline",
    "Flux2KleinPipeline",
    "Flux2KleinInpaintPipeline",
}


def euler_only(base_config, pipeline: str = "") -> bool:
    """Whether the flow Euler sampler is the only one diffusers runs with this model: its noise levels shift by the
    picture's size (FLUX), or its ``pipeline`` class sets them itself."""
    return bool(dict(base_config).get("use_dynamic_shifting")) or pipeline in OWN_SIGMAS


def resolve_sampler(name: str | None, base_config, *, edit: bool = False, pipeline: str = "") -> str:
    """``name``, or for None / ``"default"`` the model's own default: DPM++ 2M, or flow Euler where it is the one
    sampler diffusers runs (:func:`euler_only`), and for a flow model's edits. A flow model's edit with a sampler that
    cannot start part-way is refused."""
    flow = is_flow_matching(base_config)
    if name in (None, "default"):
        return "euler" if flow and (edit or euler_only(base_config, pipeline)) else DEFAULT_SAMPLER
    if flow and edit and name not in _FLOW_EDIT:
        raise CharforgeError(f"--sampler {name} cannot start from a picture on a flow-matching model; use euler or heun")
    return name


def model_sampler(name: str | None, source: str) -> str:
    """:func:`resolve_sampler` for a model not loaded yet (caches key on the name before anything is drawn): its
    folder's ``scheduler/scheduler_config.json`` is read; a hub id or single file resolves as a UNet model does."""
    import json
    from pathlib import Path

    from ..models.loading import model_location

    folder = Path(model_location(source)).expanduser()

    def read(path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except ValueError:
            return {}

    pipeline = str(read(folder / "model_index.json").get("_class_name", ""))
    return resolve_sampler(name, read(folder / "scheduler" / "scheduler_config.json"), pipeline=pipeline)


def is_flow_matching(base_config) -> bool:
    """Whether the model's own scheduler is a flow-matching one (the family is read off it, as diffusers does)."""
    return str(dict(base_config).get("_class_name", "")).startswith("FlowMatch")


def make_scheduler(name: str, base_config, pipeline: str = ""):
    """A fresh scheduler ``name`` built from the base model's scheduler config (betas, prediction type; a flow
    model's shift); ``pipeline``: the class it draws in."""
    import diffusers

    name = resolve_sampler(name, base_config, pipeline=pipeline)
    if name not in SAMPLERS:
        raise CharforgeError(f"--sampler {name!r} is unknown; choose from: {', '.join(SAMPLERS)}")
    if is_flow_matching(base_config):
        # A resolution-dependent shift (FLUX) is set by the pipeline through sigmas only the flow Euler sampler takes.
        usable = ["euler"] if euler_only(base_config, pipeline) else list(_FLOW)
        if name not in usable:
            why = "a DDPM noise schedule" if name not in _FLOW else "a fixed shift"
            raise CharforgeError(f"--sampler {name} assumes {why}; this flow-matching model draws with: {', '.join(usable)}")
        class_name, extra = _FLOW[name]
        if extra:
            extra = {**extra, "flow_shift": float(dict(base_config).get("shift", 1.0))}
        return getattr(diffusers, class_name).from_config(base_config, **extra)
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
