"""Text-to-image with one or several LoRAs, a chosen sampler, and parameters embedded in every PNG."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from .. import atomic, progress
from ..errors import CharforgeError, PicturesInterrupted
from ..models.files import DIFFUSERS_LORA_FILE, exported_file
from ..models.hashes import lora_hash
from ..models.loading import BaseModel, draw_multiple, native_resolution, recommended_guidance, size_multiple
from ..models.token_embeddings import BUNDLE_PREFIX, Restore, read_token_embeddings, unbundle, write_token_embeddings
from .conditions import NONE, Conditions, call_arguments, edit_size, finish
from .conditions import pipeline_for as conditions_pipeline
from .metadata import GenerationParams, save_png
from .options import THESIS_STEPS, DrawOptions
from .schedulers import make_scheduler, resolve_sampler, sampler_label
from .sheet import contact_sheet


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    weight: float = 1.0

    @property
    def file(self) -> Path:
        """The file A1111 or ComfyUI would load: a result folder's kohya copy, else its diffusers file."""
        if self.path.is_dir():
            return exported_file(self.path) or self.path / DIFFUSERS_LORA_FILE
        return self.path

    @property
    def name(self) -> str:
        """The name ``<lora:NAME:w>`` calls it by in A1111: its file's, as A1111 lists the files of its LoRA folder."""
        if self.path.is_dir() and exported_file(self.path) is None:
            return self.path.parent.name if self.path.name == "final" else self.path.name
        return self.file.stem

    def hash(self) -> str:
        """A1111's "Lora hashes" entry for it ("" for a folder with no LoRA file)."""
        return lora_hash(self.file) if self.file.is_file() else ""

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        """``PATH`` or ``PATH:WEIGHT`` (the weight after the last colon)."""
        path, weight = text, 1.0
        if ":" in text:
            head, tail = text.rsplit(":", 1)
            try:
                path, weight = head, float(tail)
            except ValueError:
                path = text
        spec = cls(Path(path), weight)
        if not spec.path.exists():
            raise CharforgeError(f"--lora {spec.path}: no such file or folder")
        if spec.path.is_file() and spec.path.suffix != ".safetensors":
            raise CharforgeError(f"--lora {spec.path}: only .safetensors LoRA files are loaded")
        return spec


def apply_loras(base: BaseModel, loras: list[LoraSpec]) -> Restore:
    """Load every LoRA as its own adapter and mix them with their weights.

    A LoRA folder that carries its identifier's trained embedding (pivotal tuning) also writes it into the text
    encoders; the returned value undoes that (``restore_token_embeddings``) when the LoRA is unloaded again.
    """
    restore: Restore = []
    if not loras:
        return restore
    names = []
    for i, spec in enumerate(loras):
        name = f"lora{i}"
        try:
            weights, embeddings = _lora_and_embeddings(spec.path)
            base.pipe.load_lora_weights(weights, adapter_name=name)
        except (ValueError, OSError, KeyError, RuntimeError) as exc:
            raise CharforgeError(
                f"--lora {spec.path}: cannot be loaded into this {base.family.label} model ({str(exc).splitlines()[0][:200]})"
            ) from exc
        names.append(name)
        try:
            for token, rows in embeddings:
                restore += write_token_embeddings(base.pipe, token, rows)
        except (ValueError, OSError) as exc:
            raise CharforgeError(f"--lora {spec.path}: its token embeddings do not fit this model ({exc})") from exc
    base.pipe.set_adapters(names, adapter_weights=[s.weight for s in loras])
    return restore


def _lora_and_embeddings(path: Path) -> tuple[str | dict[str, torch.Tensor], list[tuple[str, dict[str, torch.Tensor]]]]:
    """What ``load_lora_weights`` takes for ``path``, and the identifier embeddings that come with it: a charforge
    folder keeps them in their own file, a kohya file bundles them (diffusers' LoRA loader does not read those keys,
    so the file's tensors are split before it sees them)."""
    if path.is_dir():
        saved = read_token_embeddings(path)
        return str(path), [saved] if saved else []
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        has_bundle = any(key.startswith(BUNDLE_PREFIX) for key in f.keys())  # noqa: SIM118 (no __iter__)
    if not has_bundle:
        return str(path), []
    return unbundle(load_file(str(path)))


def read_prompts_file(path: Path) -> list[str]:
    if not path.is_file():
        raise CharforgeError(f"--prompts {path}: file not found")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise CharforgeError(f"--prompts {path}: no prompts in it (one per line; # starts a comment)")
    return prompts


def new_output_dir(root: Path) -> Path:
    """A free timestamped folder name under ``root``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, n = root / stamp, 2
    while folder.exists():
        folder, n = root / f"{stamp}-{n}", n + 1
    return folder  # made when the first picture is written, so a refused request leaves no empty folder


def native_size(pipe) -> tuple[int, int]:
    """The pixel size the model was trained at, and the multiple every side must be (:func:`size_multiple`)."""
    return native_resolution(pipe), size_multiple(pipe)


# Pipelines that take classifier-free guidance as ``true_cfg_scale`` and apply it only with a negative prompt (their
# ``guidance_scale`` is a distilled-guidance input Qwen-Image does not have); the pipeline's own examples pass " ".
TRUE_CFG_PIPELINES = {"QwenImagePipeline", "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline"}
# Pipelines that take no negative prompt as text: they guide away from "" unless given the negative prompt's
# embeddings (FLUX.2 klein), which are encoded here with the pipeline's own encoder.
NEGATIVE_EMBEDDING_PIPELINES = {"Flux2KleinPipeline", "Flux2KleinInpaintPipeline"}


def own_guidance(pipe) -> float:
    """The guidance ``pipe`` draws at when told none (SD's 7.5, FLUX's 3.5, Qwen-Image's true CFG 4.0)."""
    import inspect

    name = "true_cfg_scale" if type(pipe).__name__ in TRUE_CFG_PIPELINES else "guidance_scale"
    return float(inspect.signature(type(pipe).__call__).parameters[name].default)


def guidance_arguments(pipe, guidance: float, negative_prompt: str, count: int) -> dict:
    """How ``pipe`` is told the guidance and the negative prompt, for ``count`` pictures."""
    negative = [negative_prompt] * count if negative_prompt else None
    if type(pipe).__name__ in TRUE_CFG_PIPELINES:
        if negative is None and guidance > 1:
            negative = [" "] * count
        return {"true_cfg_scale": guidance, "negative_prompt": negative}
    if type(pipe).__name__ in NEGATIVE_EMBEDDING_PIPELINES:
        embeds = pipe.encode_prompt(negative)[0] if negative else None
        return {"guidance_scale": guidance, "negative_prompt_embeds": embeds}
    return {"guidance_scale": guidance, "negative_prompt": negative}


def draw_batch(
    pipe,
    prompts: list[str],
    seeds: list[int],
    *,
    negative_prompt: str = "",
    steps: int = THESIS_STEPS,
    guidance: float = 7.5,
    width: int,
    height: int,
    conditions: Conditions = NONE,
    controlnet=None,
) -> list[Image.Image]:
    """Several pictures in one pass of the model, each with its own seed's noise (``prompts[i]``, ``seeds[i]``).

    Each picture starts from the same noise as when drawn alone, so a batch shows what single draws
    show; the numbers can differ in the last bits because batched kernels sum in another order.
    Batches pay off most where the model is small next to the fixed cost of a step (CPUs, the mini world).
    """
    size = {"width": width, "height": height}
    if conditions.edit is not None and int(steps * conditions.edit.strength) < 1:
        # diffusers runs int(steps * strength) of the steps, and fails on none
        strength = conditions.edit.strength
        raise CharforgeError(
            f"--strength {strength:g} with --steps {steps} leaves no step to draw; use --steps {math.ceil(1 / strength)} or more"
        )
    if conditions.any:
        pipe, extra = conditions_pipeline(pipe, conditions, controlnet), call_arguments(conditions, (width, height), len(prompts))
        if conditions.edit is not None and conditions.edit.mask is None:
            size = {}  # image-to-image draws at its picture's size
    else:
        extra = {}
    with torch.no_grad():
        images = pipe(
            prompt=list(prompts),  # by name: FLUX.2 klein's first argument is a reference picture
            num_inference_steps=steps,
            generator=[torch.Generator().manual_seed(s) for s in seeds],
            **guidance_arguments(pipe, guidance, negative_prompt, len(prompts)),
            **size,
            **extra,
        ).images
    return [finish(image, conditions, (width, height)) for image in images]


def generate_images(
    base: BaseModel,
    prompts: list[str],
    out_dir: Path,
    draw: DrawOptions | None = None,
    *,
    width: int | None = None,
    height: int | None = None,
    loras: list[LoraSpec] = (),
    show_progress: bool = True,
    conditions: Conditions = NONE,
    controlnet=None,
) -> list[Path]:
    """Generate ``draw.num_images`` per prompt (seeds ``seed, seed+1, ...`` or ``seeds``); returns PNG paths.

    ``guidance`` None draws at the model's recommended guidance (``recommended_guidance``); ``sampler`` "default" at
    the model's default sampler (``resolve_sampler``).

    ``draw.batch_size`` pictures are drawn per pass of the model. A ``contact-sheet.png`` of all of them is
    written beside the images.
    """
    draw = draw or DrawOptions()
    steps, negative_prompt, batch_size = draw.steps, draw.negative_prompt, draw.batch_size
    pipe = base.pipe
    guidance = recommended_guidance(base.source) if draw.guidance is None else draw.guidance
    sampler = _set_sampler(base, draw.sampler, conditions)
    width, height = _picture_size(pipe, conditions, width, height)
    seed_list = draw.seed_list
    jobs = [(p, s) for p in prompts for s in seed_list]
    template = GenerationParams(  # what every picture of this call shares; each gets its prompt and seed
        prompt="", negative_prompt=negative_prompt, steps=steps, sampler=sampler_label(sampler), cfg_scale=guidance,
        seed=0, width=width, height=height, model=base.name, model_hash=base.hash,
        loras=[(spec.name, spec.weight) for spec in loras], lora_hashes={spec.name: spec.hash() for spec in loras},
        extra=conditions.params(),
    )  # fmt: skip
    paths, images, labels = [], [], []
    try:
        with tqdm(total=len(jobs), desc="generate", unit="img", disable=not show_progress) as bar:
            for start in range(0, len(jobs), batch_size):
                batch = jobs[start : start + batch_size]
                drawn = draw_batch(
                    pipe, [p for p, _ in batch], [s for _, s in batch], negative_prompt=negative_prompt, steps=steps,
                    guidance=guidance, width=width, height=height, conditions=conditions, controlnet=controlnet,
                )  # fmt: skip
                for i, ((prompt, s), image) in enumerate(zip(batch, drawn, strict=True), start):
                    params = dataclasses.replace(template, prompt=prompt, seed=s)
                    paths.append(save_png(image, out_dir / f"{i:05d}-{s}.png", params))
                    images.append(image)
                    labels.append(f"{s}: {prompt}")
                bar.update(len(batch))
                progress.report("generate", len(paths), len(jobs))
    except KeyboardInterrupt:
        if images:  # what was drawn is kept, with its sheet
            _write_sheet(images, labels, len(seed_list), out_dir)
        raise PicturesInterrupted(len(paths), len(jobs), str(out_dir)) from None
    _write_sheet(images, labels, len(seed_list), out_dir)
    return paths


def _set_sampler(base: BaseModel, name: str, conditions: Conditions) -> str:
    """Give the pipeline the sampler ``name`` resolves to for this model and kind of drawing; returns its name."""
    kind = type(base.pipe).__name__
    sampler = resolve_sampler(name, base.scheduler_config, edit=conditions.edit is not None, pipeline=kind)
    base.pipe.scheduler = make_scheduler(sampler, base.scheduler_config, kind)
    base.pipe.set_progress_bar_config(disable=True)
    return sampler


def _picture_size(pipe, conditions: Conditions, width: int | None, height: int | None) -> tuple[int, int]:
    """The size to draw at: an edit's picture's, else the one asked for, else the model's native; checked against
    what the model can draw (:func:`draw_multiple`)."""
    native, _ = native_size(pipe)
    multiple = draw_multiple(pipe)
    if conditions.edit is not None:  # an edit draws at its picture's size
        width, height = edit_size(conditions.edit.image, multiple)
    width, height = width or native, height or native
    if width % multiple or height % multiple:
        raise CharforgeError(f"--width/--height must be multiples of {multiple} for this model (got {width}x{height})")
    return width, height


def _write_sheet(images: list, labels: list[str], columns: int, out_dir: Path) -> None:
    sheet = contact_sheet(images, labels, columns=columns)
    with atomic.atomic_path(out_dir / "contact-sheet.png") as tmp:
        sheet.save(tmp, format="PNG")
