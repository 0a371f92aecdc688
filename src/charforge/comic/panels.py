"""Panel pictures: one job per picture, cached by everything that changes its pixels.

The cache key hashes the prompt, seed, sampler settings, size, the base model and the *contents* of
every LoRA and sketch file, so editing a balloon re-letters the page without regenerating, while
retraining a LoRA (same path, new weights) regenerates the panels that use it. Each cached picture
has a sidecar JSON with its parameters (and PNG metadata in the A1111 format), so a page can be
reproduced exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image

from ..generate.metadata import GenerationParams
from ..generate.picture_cache import PictureCache
from ..generate.schedulers import sampler_label
from ..generate.text2image import LoraSpec, draw_batch, native_size
from ..models.loading import model_file_hash, model_name


@dataclass(frozen=True)
class PanelJob:
    """Everything that decides one generated picture."""

    prompt: str
    negative: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    sampler: str
    base: str
    loras: tuple[tuple[str, float, str], ...] = ()  # (path, weight, content digest)
    sketch: tuple[str, str] | None = None  # (path, content digest)
    strength: float = 0.7
    # an image prompt (IP-Adapter) and a picture to edit, each file as (path, content digest)
    image_prompt: tuple[str, str] | None = None
    ip_adapter: str = ""
    ip_scale: float | None = None
    ip_preset: str | None = None
    ip_mask: tuple[str, str] | None = None
    edit: tuple[str, str] | None = None
    edit_mask: tuple[str, str] | None = None
    mask_words: str | None = None
    edit_strength: float | None = None

    def key(self) -> str:
        data = asdict(self)
        # paths do not change pixels, contents do
        data["loras"] = [(w, d) for _, w, d in self.loras]
        for name in _FILE_FIELDS:
            data[name] = getattr(self, name)[1] if getattr(self, name) else None
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]

    def conditions(self):
        """What the picture is drawn from besides its prompt (``generate.conditions``), its files read and checked;
        a mask from words is found by the segmentation model here."""
        from ..generate.conditions import NONE, build_conditions

        if self.image_prompt is None and self.edit is None and self.sketch is None:
            return NONE
        if self.sketch is not None:  # a sketch is a picture restyled whole (no mask) at the panel's strength
            return build_conditions(edit_image=self.sketch[0], strength=self.strength)
        mask = self.edit_mask[0] if self.edit_mask else None
        if self.edit is not None and self.mask_words is not None:
            from ..generate.masks import open_picture
            from ..generate.segment import mask_from_words

            mask = mask_from_words(open_picture(self.edit[0], "edit image"), self.mask_words)
        return build_conditions(
            mask_source=f"words: {self.mask_words}" if self.mask_words is not None else None,
            image_prompt=self.image_prompt[0] if self.image_prompt else None,
            ip_adapter=self.ip_adapter,
            ip_scale_value=self.ip_scale,
            ip_preset=self.ip_preset,
            ip_mask=self.ip_mask[0] if self.ip_mask else None,
            edit_image=self.edit[0] if self.edit else None,
            mask=mask,
            strength=self.edit_strength,
        )

    def params(self, conditions: dict[str, str]) -> GenerationParams:
        """The picture's PNG parameters; ``conditions``: the A1111-style fields of what it was drawn from
        (``Conditions.params`` of the conditions the painter drew with)."""
        specs = [LoraSpec(Path(p), w) for p, w, _ in self.loras]
        return GenerationParams(
            prompt=self.prompt,
            negative_prompt=self.negative,
            steps=self.steps,
            sampler=sampler_label(self.sampler),
            cfg_scale=self.guidance,
            seed=self.seed,
            width=self.width,
            height=self.height,
            model=model_name(self.base),
            model_hash=model_file_hash(self.base),
            loras=[(spec.name, spec.weight) for spec in specs],
            lora_hashes={spec.name: spec.hash() for spec in specs},
            extra=conditions,
        )


_FILE_FIELDS = ("sketch", "image_prompt", "ip_mask", "edit", "edit_mask")


class PanelPainter(Protocol):
    """Draws pictures for jobs (the diffusers painter below, or a stand-in in tests)."""

    def geometry(self, base: str) -> tuple[int, int]:
        """(native side in px, the multiple every side must be)."""
        ...

    def __call__(self, job: PanelJob) -> tuple[Image.Image, dict[str, str]]:
        """The job's picture, and the A1111-style fields of the conditions it was drawn from (for its PNG)."""
        ...


# Aspect ratios the SD families draw whole (SDXL's buckets span about 1:2 to 2:1); a panel outside them is cropped.
MAX_ASPECT = 2.0


def generation_size(
    native: int, multiple: int, aspect: float, fixed: tuple[int, int] | None = None, *, square: bool = False
) -> tuple[int, int]:
    """A size the model draws well for a panel of ``aspect`` (width / height), rounded to what it accepts.

    The model's native area in the panel's shape, within 1:2 .. 2:1; ``square``: the native square, for a model
    trained on squares only. The picture is then fitted into the panel by a crop around the subject.
    """
    if fixed is not None:
        w, h = fixed
    else:
        aspect = 1.0 if square else min(MAX_ASPECT, max(1 / MAX_ASPECT, aspect))
        w, h = native * aspect**0.5, native / aspect**0.5
    clamp = lambda v: max(multiple, int(round(v / multiple)) * multiple)  # noqa: E731
    return clamp(w), clamp(h)


class DiffusersPainter:
    """Loads each base model once and swaps LoRA sets between panels (two characters = two adapters)."""

    def __init__(self, *, allow_unsafe_pickle: bool = False) -> None:
        from ..generate.painter import Painter

        self.painter = Painter(allow_unsafe_pickle=allow_unsafe_pickle)
        self._geometry: dict[str, tuple[int, int]] = {}

    def geometry(self, base: str) -> tuple[int, int]:
        if base not in self._geometry:
            self._geometry[base] = self._read_geometry(base)
        return self._geometry[base]

    def _read_geometry(self, base: str) -> tuple[int, int]:
        folder = Path(base)
        if (folder / "unet" / "config.json").is_file() and (folder / "vae" / "config.json").is_file():
            unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
            vae = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
            scale = 2 ** (len(vae["block_out_channels"]) - 1)
            native, multiple = int(unet["sample_size"]) * scale, scale * 2 ** (len(unet["block_out_channels"]) - 1)
        else:
            native, multiple = native_size(self.painter.model(base).pipe)
        return native, math.lcm(8, multiple)  # diffusers pipelines also want multiples of 8

    def __call__(self, job: PanelJob) -> tuple[Image.Image, dict[str, str]]:
        from ..generate.painter import Wearing

        wearing = Wearing(loras=tuple((Path(p), float(w)) for p, w, _ in job.loras))
        pipe = self.painter.wear(job.base, wearing, sampler=job.sampler).pipe
        conditions, controlnet = self.painter.condition(job.base, job.conditions())
        image = draw_batch(
            pipe,
            [job.prompt],
            [job.seed],
            negative_prompt=job.negative,
            steps=job.steps,
            guidance=job.guidance,
            width=job.width,
            height=job.height,
            conditions=conditions,
            controlnet=controlnet,
        )[0]
        return image, conditions.params()


def paint(job: PanelJob, painter: PanelPainter, cache: PictureCache) -> tuple[Image.Image, bool]:
    """The job's picture from the cache (``<key>.png``, its job beside it as ``<key>.json``), else drawn and stored;
    the flag says whether it was drawn."""
    key = job.key()
    cached = cache.open(f"{key}.png", key)
    if cached is not None:
        return cached, False
    image, drawn_from = painter(job)
    image = image.convert("RGB")
    cache.put(f"{key}.png", key, image, job.params(drawn_from), record=asdict(job))
    return image, True


def join_regions(images: list[Image.Image], widths: list[float], size: tuple[int, int], feather: float = 0.06) -> Image.Image:
    """Place region pictures side by side in ``size``, cross-fading over a narrow seam."""
    total_w, total_h = size
    shares = [w / sum(widths) for w in widths]
    out = Image.new("RGB", size, "white")
    x = 0.0
    fade = max(1, int(feather * total_w))
    for i, (image, share) in enumerate(zip(images, shares, strict=True)):
        left = int(round(x))
        right = total_w if i == len(images) - 1 else int(round(x + share * total_w))
        lo = max(0, left - (fade if i else 0))
        tile = fit_around_subject(image, (right - lo, total_h))
        mask = Image.new("L", tile.size, 255)
        if i:
            ramp = Image.linear_gradient("L").rotate(90, expand=True).resize((left - lo or 1, total_h))
            mask.paste(ramp, (0, 0))
        out.paste(tile, (lo, 0), mask)
        x += share * total_w
    return out


def fit_around_subject(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` in a panel of ``size``: cropped to its shape around the character, then resized. On a plain
    background the figure is never cut (it is padded with the background instead); in a scene of flat regions the
    window moves over the figure; a busy picture is cropped about its centre."""
    from ..data.subject import crop_towards, find_subject, frame_subject, scene_subject_box

    aspect = size[0] / max(1, size[1])
    subject = find_subject(image)
    if subject.flat_background:
        framed = frame_subject(image, subject, aspect=aspect)
    else:
        framed = crop_towards(image, scene_subject_box(image), aspect)
    return framed.resize(size, Image.Resampling.LANCZOS)


def subject_box(image: Image.Image) -> tuple[float, float, float, float] | None:
    """The character's box (on a plain background, or in a scene of flat regions), for lettering to keep clear of;
    None on a busy picture."""
    from ..data.subject import find_subject, scene_subject_box

    subject = find_subject(image)
    if subject.flat_background:
        return None if subject.empty else tuple(float(v) for v in subject.bbox)
    box = scene_subject_box(image)
    return None if box is None else tuple(float(v) for v in box)
