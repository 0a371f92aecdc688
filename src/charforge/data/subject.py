"""Find the character on a plain background and frame it without cutting it off.

Artists' drawings usually sit on white or one flat colour. The background colour is the median of the
border pixels; if most of the border is within ``tolerance`` of it, the background is flat and the
subject is everything that differs from it. No model is needed for that case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Subject:
    bbox: tuple[int, int, int, int]  # (left, top, right, bottom), right/bottom exclusive
    background: tuple[int, int, int]
    flat_background: bool
    area_share: float  # share of pixels that belong to the subject (1.0 when the background is not flat)

    @property
    def empty(self) -> bool:
        return self.area_share == 0.0


def subject_mask(image: Image.Image, background: tuple[int, int, int], tolerance: int = 24) -> np.ndarray:
    """(H, W) bool: pixels that differ from ``background`` by more than ``tolerance`` in any channel."""
    array = np.asarray(image.convert("RGB"), dtype=np.int16)
    return np.abs(array - np.array(background, dtype=np.int16)).max(axis=2) > tolerance


def find_subject(image: Image.Image, tolerance: int = 24, flat_share: float = 0.9) -> Subject:
    array = np.asarray(image.convert("RGB"), dtype=np.int16)
    h, w, _ = array.shape
    border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    background = tuple(int(v) for v in np.median(border, axis=0))
    close = np.abs(border - np.array(background)).max(axis=1) <= tolerance
    if close.mean() < flat_share:
        return Subject((0, 0, w, h), background, False, 1.0)
    mask = subject_mask(image, background, tolerance)
    if not mask.any():
        return Subject((0, 0, w, h), background, True, 0.0)
    ys, xs = np.nonzero(mask)
    return Subject((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), background, True, float(mask.mean()))


def frame_subject(image: Image.Image, subject: Subject, aspect: float = 1.0, margin: float = 0.06) -> Image.Image:
    """Crop to ``aspect`` (width / height) around the subject, padding with the background if needed.

    With a flat background the whole subject stays in frame; otherwise the largest centred crop of
    that aspect is taken (there is no subject to protect).
    """
    w, h = image.size
    if not subject.flat_background or subject.empty:
        crop_w = min(w, round(h * aspect))
        crop_h = min(h, round(crop_w / aspect))
        left, top = (w - crop_w) // 2, (h - crop_h) // 2
        return image.crop((left, top, left + crop_w, top + crop_h))
    x0, y0, x1, y1 = subject.bbox
    sw, sh = (x1 - x0) * (1 + 2 * margin), (y1 - y0) * (1 + 2 * margin)
    crop_w = max(sw, sh * aspect)
    crop_h = crop_w / aspect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = round(cx - crop_w / 2), round(cy - crop_h / 2)
    size = (round(crop_w), round(crop_h))
    canvas = Image.new("RGB", size, subject.background)
    canvas.paste(
        image.crop((max(left, 0), max(top, 0), min(left + size[0], w), min(top + size[1], h))), (max(-left, 0), max(-top, 0))
    )
    return canvas
