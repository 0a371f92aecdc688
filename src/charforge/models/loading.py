"""Load a base model from a hub id, a local diffusers folder or a single-file checkpoint.

The family is detected, never asked for. Pickle-based files (``.ckpt``, ``.bin``, ``.pt``) can run
arbitrary code when loaded, so they are refused unless the user passes ``allow_unsafe_pickle``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CharforgeError
from .family import ModelFamily, detect_family, detect_single_file_family, family_of_pipeline

PICKLE_SUFFIXES = {".ckpt", ".bin", ".pt", ".pth"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# What a model's maker recommends for drawing with it, in its diffusers folder: ``{"guidance": 5.0}``.
MODEL_DEFAULTS_FILE = "charforge.json"
DEFAULT_GUIDANCE = 7.5  # Stable Diffusion's own default, for every model that recommends nothing


@dataclass
class BaseModel:
    """A loaded pipeline and what we know about it."""

    pipe: Any  # StableDiffusionPipeline | StableDiffusionXLPipeline | StableDiffusion3Pipeline
    family: ModelFamily
    source: str  # as the user gave it; stored in configs and PNG metadata
    # The scheduler settings the model came with (betas, prediction type). Every sampler is built from these, not
    # from the last sampler's, whose own options (Karras sigmas, say) would otherwise carry over to the next.
    scheduler_config: Any = None

    def __post_init__(self) -> None:
        if self.scheduler_config is None:
            self.scheduler_config = self.pipe.scheduler.config

    @property
    def name(self) -> str:
        return model_name(self.source)

    @property
    def hash(self) -> str:
        return model_file_hash(self.source)


def model_name(source: str) -> str:
    """What A1111 would call a model: a taught model's own name (stored beside it), else its file or folder's."""
    path = Path(source.rstrip("/"))
    if not path.exists():
        return source
    return str(model_defaults(source).get("name") or path.stem)


def model_file_hash(source: str) -> str:
    """A1111's "Model hash": of the file A1111 would load (the source, or a folder's single-file copy), or ""."""
    from .files import exported_file
    from .hashes import model_hash

    path: Path | None = Path(model_location(source)).expanduser()
    if path is not None and path.is_dir():
        path = exported_file(path)
    return model_hash(path) if path is not None and path.is_file() else ""


def denoiser(pipe) -> Any:
    """The network that denoises: ``pipe.unet`` (SD1.x-SDXL) or ``pipe.transformer`` (SD3)."""
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


def native_resolution(pipe) -> int:
    """The side in pixels the model was trained at (FLUX's transformer has no size: its pipeline's default)."""
    config = denoiser(pipe).config
    size = getattr(config, "sample_size", None) or getattr(pipe, "default_sample_size", None)
    return int(size) * pipe.vae_scale_factor if size else 1024  # Z-Image's pipeline draws 1024 px unless told


def size_multiple(pipe) -> int:
    """What every side in pixels must be a multiple of: the VAE's factor times the UNet's downsampling, or times a
    transformer's patch size (FLUX packs 2x2 latent patches itself). The one geometry rule of drawing and training."""
    config = denoiser(pipe).config
    if hasattr(pipe, "_pack_latents"):
        inner = 2
    elif hasattr(config, "patch_size"):
        inner = config.patch_size
    elif hasattr(config, "all_patch_size"):  # Z-Image: the patch size it draws with
        inner = config.all_patch_size[0]
    else:
        inner = 2 ** (len(config.block_out_channels) - 1)
    return pipe.vae_scale_factor * int(inner)


def draw_multiple(pipe) -> int:
    """What every side must be a multiple of to *draw* at it: 8 (diffusers' pipelines refuse other sizes), and whole
    latent patches for a transformer. A UNet pads its own downsampling, so SD draws at any multiple of 8 as in A1111;
    training keeps the stricter :func:`size_multiple` (its latents are batched and cached at one size)."""
    if getattr(pipe, "unet", None) is not None:
        return math.lcm(8, pipe.vae_scale_factor)
    return math.lcm(8, size_multiple(pipe))


def pipeline_class(family: ModelFamily):
    from diffusers import (
        ChromaPipeline,
        Flux2KleinPipeline,
        FluxPipeline,
        QwenImagePipeline,
        StableDiffusion3Pipeline,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        ZImagePipeline,
    )

    classes = {
        ModelFamily.QWEN: QwenImagePipeline,
        ModelFamily.ZIMAGE: ZImagePipeline,
        ModelFamily.CHROMA: ChromaPipeline,
        ModelFamily.SDXL: StableDiffusionXLPipeline,
        ModelFamily.SD3: StableDiffusion3Pipeline,
        ModelFamily.FLUX: FluxPipeline,
        ModelFamily.FLUX2: Flux2KleinPipeline,
    }
    return classes.get(family, StableDiffusionPipeline)


def _sd_kwargs(family: ModelFamily) -> dict[str, Any]:
    # SD1/SD2 pipelines would otherwise insist on a safety checker we cannot download.
    return {"safety_checker": None, "requires_safety_checker": False} if family in (ModelFamily.SD1, ModelFamily.SD2) else {}


def detect_pipeline(where: str, index: dict[str, Any], read_config) -> ModelFamily:
    """The family of a diffusers pipeline from its ``model_index.json`` and, for UNet families, its UNet config
    (``read_config("unet")`` returns it as a dict); ``where`` names the model in errors."""
    try:
        family = family_of_pipeline(index)
    except ValueError as exc:
        raise CharforgeError(f"{where}: {exc}") from exc
    if family is not None:
        return family
    return detect_family(read_config("unet"), has_second_text_encoder="text_encoder_2" in index)


def _folder_family(folder: Path) -> ModelFamily:
    def read_config(part: str) -> dict[str, Any]:
        path = folder / part / "config.json"
        if not path.is_file():
            raise CharforgeError(f"{folder}: diffusers folder has no {part}/config.json")
        return json.loads(path.read_text(encoding="utf-8"))

    return detect_pipeline(str(folder), json.loads((folder / "model_index.json").read_text(encoding="utf-8")), read_config)


FINETUNED_PARTS = ("unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3")


def load_finetuned_module(folder: Path, like: Any) -> Any:
    """A fine-tuned part (a DreamBooth checkpoint's ``unet/`` or ``text_encoder/``) in the class, dtype and
    device of ``like``, the part it replaces."""
    if not (folder / "config.json").is_file():
        raise CharforgeError(f"{folder}: no {folder.name} here (config.json missing); the checkpoint is incomplete")
    module = type(like).from_pretrained(folder, use_safetensors=True)  # never a pickle
    return module.to(device=like.device, dtype=like.dtype).eval()


def swap_finetuned(pipe: Any, folder: Path) -> dict[str, Any]:
    """Put a DreamBooth checkpoint's parts (UNet, and text encoders when they trained) into ``pipe``.

    Returns the parts it replaced, so a caller can put the base back (:func:`restore_parts`).
    """
    if not (folder / "unet").is_dir() and not (folder / "transformer").is_dir():
        raise CharforgeError(f"{folder}: no unet/ or transformer/ here; the checkpoint is incomplete")
    replaced = {}
    for name in FINETUNED_PARTS:
        if (folder / name).is_dir():
            replaced[name] = getattr(pipe, name)
            setattr(pipe, name, load_finetuned_module(folder / name, replaced[name]))
    return replaced


def restore_parts(pipe: Any, parts: dict[str, Any]) -> None:
    for name, module in parts.items():
        setattr(pipe, name, module)


def _single_file_keys(path: Path, allow_unsafe_pickle: bool) -> set[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                return set(f.keys())
        except Exception as exc:  # safetensors raises its own error types for bad headers
            raise CharforgeError(f"{path}: not a valid .safetensors file ({exc})") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
        return set(state.get("state_dict", state).keys())
    except Exception as exc:  # a broken or foreign pickle: UnpicklingError, EOFError, RuntimeError, AttributeError
        raise CharforgeError(f"{path}: not a readable {path.suffix} checkpoint ({first_line(exc)})") from exc


# Models that ship inside a package, by name, accepted wherever a base model is taken (``--base world``, a storyboard's
# ``model: world``). The mini world registers its own (``charforge.world``), so this layer never imports it.
NAMED_MODELS: dict[str, Path] = {}


def register_named_model(name: str, folder: Path) -> None:
    NAMED_MODELS[name] = folder


def model_location(source: str) -> str:
    """``source`` with a registered name replaced by its folder; anything else as given."""
    return str(NAMED_MODELS[source]) if source in NAMED_MODELS else source


def model_defaults(source: str) -> dict[str, Any]:
    """What the model's maker stored beside it (``charforge.json`` in its folder): how to draw it. Empty elsewhere."""
    path = Path(model_location(source)).expanduser() / MODEL_DEFAULTS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CharforgeError(f"{path}: not valid JSON ({first_line(exc)})") from exc
    if not isinstance(data, dict):
        raise CharforgeError(f'{path}: expected a JSON object such as {{"guidance": 5.0}}')
    adapter = data.get("ip_adapter")  # the model's own IP-Adapter: a file beside it, or a hub path as --ip-adapter takes
    if isinstance(adapter, str) and (path.parent / adapter).is_file():
        data["ip_adapter"] = str((path.parent / adapter).resolve())
    return data


def recommended_guidance(source: str) -> float:
    """The guidance to draw with when the user names none: the model folder's ``charforge.json``, else SD's 7.5.

    Pipelines carry SD's 7.5 as their default, tuned for models trained at SD's scale; a small model trained from
    scratch can need less (the mini world's turns the taught pink hair purple at 7.5; its maker's choice, 5, is
    stored with it). Read without loading the model, so it can key caches before anything is drawn.
    """
    value = model_defaults(source).get("guidance", family_guidance(source))
    where = Path(model_location(source)).expanduser() / MODEL_DEFAULTS_FILE
    try:
        guidance = float(value)
    except (ValueError, TypeError) as exc:
        raise CharforgeError(f'{where}: "guidance" must be a number (got {value!r})') from exc
    if guidance < 0:
        raise CharforgeError(f"{where}: guidance {guidance} is negative")
    return guidance


# What each family's makers draw with (diffusers' pipeline docs): SD3/3.5 at 7.0; FLUX.1-dev's distilled guidance 3.5;
# Chroma (true classifier-free guidance again, a negative prompt works) at its pipeline's 5.0.
# Z-Image at its pipeline's 5.0 (the distilled Z-Image-Turbo wants --guidance 0 and about 9 steps).
_FAMILY_GUIDANCE = {
    "StableDiffusion3Pipeline": 7.0,
    "FluxPipeline": 3.5,
    "ChromaPipeline": 5.0,
    "ZImagePipeline": 5.0,
    "QwenImagePipeline": 4.0,  # its true_cfg_scale (the model is not guidance-distilled)
    "Flux2KleinPipeline": 4.0,  # the base klein models (true guidance); the step-distilled ones draw without (below)
}


def family_guidance(source: str) -> float:
    """The family's recommended guidance, read off a local folder's ``model_index.json``; SD's 7.5 elsewhere."""
    index = Path(model_location(source)).expanduser() / "model_index.json"
    if not index.is_file():
        return DEFAULT_GUIDANCE
    try:
        found = json.loads(index.read_text(encoding="utf-8"))
    except ValueError:
        return DEFAULT_GUIDANCE
    if found.get("is_distilled"):  # FLUX.2 klein 4B / 9B: step-distilled, their pipeline ignores guidance above 1
        return 1.0
    return _FAMILY_GUIDANCE.get(found.get("_class_name", ""), DEFAULT_GUIDANCE)


def square_only(source: str) -> bool:
    """Whether the model was trained on square pictures only (``"shapes": "square"``): other shapes come out
    broken (the mini world's model, shown a 48x80 canvas, cuts heads off), so callers draw it square and crop."""
    return model_defaults(source).get("shapes") == "square"


def write_model_defaults(folder: Path, defaults: dict[str, Any]) -> None:
    """Store what a model should be drawn with beside it (read back by :func:`model_defaults`)."""
    (Path(folder) / MODEL_DEFAULTS_FILE).write_text(json.dumps(defaults, indent=2) + "\n", encoding="utf-8")


def load_base_model(
    source: str,
    *,
    allow_unsafe_pickle: bool = False,
    base_config: str | None = None,
    torch_dtype: torch.dtype = torch.float32,
) -> BaseModel:
    """Load ``source`` (hub id, diffusers folder, single file, or a registered name) and detect its family."""
    quiet_loading()
    source = model_location(source)
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CharforgeError(f"{path}: not a diffusers model folder (no model_index.json)")
        family = _folder_family(path)
        try:
            pipe = pipeline_class(family).from_pretrained(
                path, dtype=torch_dtype, use_safetensors=not allow_unsafe_pickle, **_sd_kwargs(family)
            )
        except (OSError, ValueError) as exc:
            hint = (
                " (it may hold only pickle .bin weights: add --allow-unsafe-pickle if you trust it)"
                if not allow_unsafe_pickle
                else ""
            )
            raise CharforgeError(f"{path}: could not load diffusers folder: {first_line(exc)}{hint}") from exc
        return BaseModel(pipe, family, str(source))
    if path.is_file():
        return _load_single_file(path, source, allow_unsafe_pickle, base_config, torch_dtype)
    looks_like_file = path.suffix in PICKLE_SUFFIXES | {".safetensors"} or source.startswith((".", "/", "~"))
    if looks_like_file or (not _HUB_ID.match(source) and "/" in source):
        raise CharforgeError(f"{source}: no such file or folder")
    if not _HUB_ID.match(source):
        raise CharforgeError(f"{source!r} is neither an existing path nor a hub id like 'org/model'")
    return _load_from_hub(source, torch_dtype)


def _load_single_file(path: Path, source: str, allow_unsafe_pickle: bool, base_config: str | None, dtype) -> BaseModel:
    if path.suffix in PICKLE_SUFFIXES and not allow_unsafe_pickle:
        raise CharforgeError(
            f"{path}: {path.suffix} files are Python pickles that can run code when loaded; "
            "use a .safetensors file, or pass --allow-unsafe-pickle if you trust its source"
        )
    if path.suffix not in PICKLE_SUFFIXES | {".safetensors"}:
        raise CharforgeError(f"{path}: unsupported model file type {path.suffix!r}; expected .safetensors")
    try:
        family = detect_single_file_family(_single_file_keys(path, allow_unsafe_pickle))
    except ValueError as exc:
        raise CharforgeError(f"{path}: not a checkpoint charforge can teach ({exc})") from exc
    kwargs: dict[str, Any] = dict(dtype=dtype, **_sd_kwargs(family))
    if base_config:
        kwargs["config"] = base_config
    try:
        pipe = pipeline_class(family).from_single_file(str(path), **kwargs)
    except Exception as exc:  # diffusers raises many types here (network, config, shape)
        raise CharforgeError(
            f"{path}: could not load {family.label} single-file checkpoint: {first_line(exc)}. "
            "Offline, pass --base-config with a local diffusers folder of the same architecture"
        ) from exc
    return BaseModel(pipe, family, str(source))


def _load_from_hub(repo_id: str, dtype) -> BaseModel:
    from diffusers import DiffusionPipeline
    from huggingface_hub import hf_hub_download

    from .hub import local_files_only

    local = local_files_only(
        repo_id, what="--base", instead="pass a local diffusers folder or .safetensors file", config_file="model_index.json"
    )
    try:
        index = json.loads(Path(hf_hub_download(repo_id, "model_index.json", local_files_only=local)).read_text("utf-8"))
        family = detect_pipeline(
            repo_id,
            index,
            lambda part: json.loads(
                Path(hf_hub_download(repo_id, f"{part}/config.json", local_files_only=local)).read_text(encoding="utf-8")
            ),
        )
    except CharforgeError:
        raise
    except Exception as exc:  # offline, unknown repo, gated repo: all end here
        raise CharforgeError(
            f"could not load {repo_id!r} from the Hugging Face hub ({first_line(exc)}); "
            "check the id and your connection, or pass a local diffusers folder or .safetensors file"
        ) from exc
    pipe = DiffusionPipeline.from_pretrained(
        repo_id, dtype=dtype, use_safetensors=True, local_files_only=local, **_sd_kwargs(family)
    )
    return BaseModel(pipe, family, repo_id)


def quiet_loading() -> None:
    """Per-component loading bars would break our one progress bar; hub download bars stay."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
