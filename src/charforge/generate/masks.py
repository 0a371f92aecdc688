"""Masks for editing a picture: read from a file, made from the character's own palette, grown and softened.

A mask is a single-channel picture the size of the one it edits: white is redrawn, black is kept (the convention
of A1111, ComfyUI and diffusers' inpainting pipelines). Our users draw flat-coloured characters, so "the pixels of
palette colour 3" (CIEDE2000 within a tolerance) is often the whole outfit, with no segmentation model; text masks
from detection models live in :mod:`charforge.generate.segment`.

A mask that covers almost all or almost none of its picture is nearly always a mistake (one project we learn from
shipped a mask that covered the whole picture and never noticed): :func:`share_warning` names the share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

from ..errors import CharforgeError

TOO_MUCH, TOO_LITTLE = 0.95, 0.005  # shares of the picture beyond which a mask is probably wrong
DEFAULT_TOLERANCE = 12.0  # CIEDE2000: flat colours plus their anti-aliased edges, not the neighbouring colour


@dataclass
class LoadedMask:
    mask: Image.Image  # mode "L", 0 keep .. 255 redraw
    notes: list[str] = field(default_factory=list)  # what was done to make it fit (converted, resized)


def open_picture(path: str | Path, what: str) -> Image.Image:
    """An RGB picture from ``path``, or a one-line error naming the option and the file."""
    path = Path(path)
    if not path.is_file():
        raise CharforgeError(f"{what} {path}: file not found")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                white = Image.new("RGBA", image.size, (255, 255, 255, 255))
                return Image.alpha_composite(white, image).convert("RGB")
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise CharforgeError(f"{what} {path}: not a readable image ({exc.__class__.__name__})") from None


def load_mask(path: str | Path, size: tuple[int, int], what: str = "--mask") -> LoadedMask:
    """The mask in ``path`` fitted to a picture of ``size`` (width, height).

    Not single-channel: converted (its alpha when it has one that varies, else its brightness), with a note. Another
    size of the same shape: resized, with a note; another shape: refused with both sizes named, since stretching
    would move the region.
    """
    path = Path(path)
    if not path.is_file():
        raise CharforgeError(f"{what} {path}: file not found")
    notes = []
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "L":
                mask = image.copy()
            elif mode in ("1", "I", "I;16", "F"):
                mask = image.convert("L")
            else:
                rgba = image.convert("RGBA")
                alpha = rgba.getchannel("A")
                varies = alpha.getextrema()[0] < 255
                mask = alpha if varies else rgba.convert("L")
                notes.append(f"{what} {path.name}: {mode} picture read as a mask from its {'alpha' if varies else 'brightness'}")
    except (UnidentifiedImageError, OSError) as exc:
        raise CharforgeError(f"{what} {path}: not a readable image ({exc.__class__.__name__})") from None
    if mask.size != tuple(size):
        (mw, mh), (w, h) = mask.size, size
        if abs(mw / mh - w / h) > 0.01:
            raise CharforgeError(f"{what} {path}: the mask is {mw}x{mh} but the picture is {w}x{h} (another shape)")
        mask = mask.resize((w, h), Image.Resampling.BILINEAR)
        notes.append(f"{what} {path.name}: resized from {mw}x{mh} to {w}x{h}")
    return LoadedMask(mask, notes)


def share(mask: Image.Image) -> float:
    """The share of the picture the mask redraws (pixels at or above half strength)."""
    return float((np.asarray(mask.convert("L")) >= 128).mean())


def share_warning(mask: Image.Image, name: str = "mask") -> str | None:
    """A warning when the mask covers almost all or almost none of its picture, naming the share."""
    covered = share(mask)
    if covered >= TOO_MUCH:
        return f"{name} covers {covered:.1%} of the picture: almost everything would be redrawn (is it inverted?)"
    if covered <= TOO_LITTLE:
        return f"{name} covers {covered:.1%} of the picture: almost nothing would be redrawn"
    return None


def grow(mask: Image.Image, dilate: int = 0, feather: int = 0) -> Image.Image:
    """``mask`` grown by ``dilate`` pixels (covers the anti-aliased edge) and softened over ``feather`` pixels."""
    out = mask.convert("L")
    if dilate > 0:
        out = out.filter(ImageFilter.MaxFilter(2 * dilate + 1))
    elif dilate < 0:
        out = out.filter(ImageFilter.MinFilter(2 * -dilate + 1))
    if feather > 0:
        out = out.filter(ImageFilter.GaussianBlur(feather / 2))
    return out


def colour_mask(image: Image.Image, colour: tuple[int, int, int], tolerance: float = DEFAULT_TOLERANCE) -> Image.Image:
    """The pixels of ``image`` within ``tolerance`` (CIEDE2000) of ``colour``, white on black."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    lab = rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)
    target = rgb2lab(np.asarray([[colour]], dtype=np.float64) / 255.0)[0, 0]
    distance = deltaE_ciede2000(lab, np.broadcast_to(target, lab.shape))
    return Image.fromarray(np.where(distance <= tolerance, 255, 0).astype(np.uint8), mode="L")


def palette_colour(palette_json: Path, which: str) -> tuple[int, int, int]:
    """Colour ``which`` of a workspace's palette: its number as ``charforge stats`` lists it (1 = the largest
    share), or a ``#rrggbb`` colour given directly."""
    text = which.strip()
    if text.startswith("#"):
        return _hex(text)
    if not text.isdigit():
        raise CharforgeError(f"--by-colour {which!r}: give a palette number (1, 2, ...) or a colour such as #d04a6f")
    if not palette_json.is_file():
        raise CharforgeError(f"--by-colour {which}: {palette_json} not found; run `charforge stats` on the workspace first")
    overall = json.loads(palette_json.read_text(encoding="utf-8"))["overall"]
    index = int(text)
    if not 1 <= index <= len(overall):
        raise CharforgeError(f"--by-colour {which}: the palette in {palette_json} has colours 1 to {len(overall)}")
    return tuple(int(c) for c in overall[index - 1]["rgb"])  # type: ignore[return-value]


def _hex(text: str) -> tuple[int, int, int]:
    value = text.lstrip("#")
    if len(value) != 6 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise CharforgeError(f"--by-colour {text}: not a #rrggbb colour")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def preview(image: Image.Image, mask: Image.Image, colour: tuple[int, int, int] = (255, 0, 80)) -> Image.Image:
    """``image`` with the masked region tinted, to check a mask by eye."""
    tint = Image.new("RGB", image.size, colour)
    strength = mask.convert("L").point(lambda v: v * 55 // 100)
    return Image.composite(tint, image.convert("RGB"), strength)


def keep_unmasked(original: Image.Image, edited: Image.Image, mask: Image.Image) -> Image.Image:
    """``edited`` inside the mask, ``original`` outside it (blended along a soft edge).

    A latent-space inpainting pass changes pixels outside the mask too (the VAE round trip); pasting the original
    back is what A1111's "mask blur" overlay and diffusers' ``apply_overlay`` do, so only the masked region changes.
    """
    edited = edited.convert("RGB").resize(original.size, Image.Resampling.LANCZOS)
    return Image.composite(edited, original.convert("RGB"), mask.convert("L").resize(original.size))
