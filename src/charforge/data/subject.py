"""Find the character on a plain background and frame it without cutting it off.

Artists' drawings usually sit on white or one flat colour. The background colour is the median of the
border pixels; if most of the border (or three of its four edges: a portrait runs off the bottom) is
within ``tolerance`` of it, the background is flat and the subject is everything that differs from it.
No model is needed for that case.
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
    """The background is flat when three of the four edges are (a portrait or a bust runs off the bottom edge
    but still sits on white), or when the whole border is; the subject is what differs from it."""
    array = np.asarray(image.convert("RGB"), dtype=np.int16)
    h, w, _ = array.shape
    edges = _edges(array)
    background = tuple(int(v) for v in np.median(np.concatenate(edges), axis=0))
    close = [np.abs(edge - np.array(background)).max(axis=1) <= tolerance for edge in edges]
    flat_edges = sum(c.mean() >= flat_share for c in close)
    if flat_edges < 3 and np.concatenate(close).mean() < flat_share:
        return Subject((0, 0, w, h), background, False, 1.0)
    mask = subject_mask(image, background, tolerance)
    if not mask.any():
        return Subject((0, 0, w, h), background, True, 0.0)
    ys, xs = np.nonzero(mask)
    return Subject((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), background, True, float(mask.mean()))


def silhouette(image: Image.Image, tolerance: int = 24) -> np.ndarray | None:
    """(H, W) bool: the character's whole shape on a flat background, or None where the background is not flat.

    What differs from the background, with enclosed holes filled: the white of an eye or a white shirt inside
    the outline belongs to the character even though it matches a white background."""
    from scipy.ndimage import binary_fill_holes

    subject = find_subject(image, tolerance)
    if not subject.flat_background or subject.empty:
        return None
    return binary_fill_holes(subject_mask(image, subject.background, tolerance))


def _edges(array: np.ndarray) -> list[np.ndarray]:
    """The top, bottom, left and right rows of pixels of an (H, W, 3) array."""
    return [array[0], array[-1], array[:, 0], array[:, -1]]


def frame_subject(image: Image.Image, subject: Subject, aspect: float = 1.0, margin: float = 0.04) -> Image.Image:
    """Crop to ``aspect`` (width / height) without cutting the subject off, padding only if it must.

    The window is the largest of that aspect that fits the picture (no zooming in: the drawing keeps its
    framing and resolution), slid so that it contains the subject plus a small margin. A subject wider
    or taller than that window gets a larger window, padded with the background colour. Without a flat
    background there is no subject to protect, so the window is centred.
    """
    w, h = image.size
    win_w = min(w, h * aspect)
    win_h = win_w / aspect
    if not subject.flat_background or subject.empty:
        left, top = (w - win_w) / 2, (h - win_h) / 2
        return image.crop((round(left), round(top), round(left + win_w), round(top + win_h)))
    x0, y0, x1, y1 = subject.bbox
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    x0, y0, x1, y1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
    if x1 - x0 > win_w or y1 - y0 > win_h:  # the subject does not fit: grow the window, pad outside
        win_w = max(x1 - x0, (y1 - y0) * aspect)
        win_h = win_w / aspect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = _slide(cx - win_w / 2, win_w, w, x0, x1)
    top = _slide(cy - win_h / 2, win_h, h, y0, y1)
    box = (round(left), round(top), round(left + win_w), round(top + win_h))
    if box[0] >= 0 and box[1] >= 0 and box[2] <= w and box[3] <= h:
        return image.crop(box)
    canvas = Image.new("RGB", (box[2] - box[0], box[3] - box[1]), subject.background)
    canvas.paste(image.crop((max(box[0], 0), max(box[1], 0), min(box[2], w), min(box[3], h))), (max(-box[0], 0), max(-box[1], 0)))
    return canvas


def _slide(start: float, length: float, limit: int, low: float, high: float) -> float:
    """Keep a window [start, start+length) inside [0, limit) when it fits, and always around [low, high)."""
    if length <= limit:
        start = min(max(start, 0.0), limit - length)
    return min(max(start, high - length), low)


def scene_subject_box(image: Image.Image, tolerance: int = 40, edge_trim: float = 0.03) -> tuple[int, int, int, int] | None:
    """Where the figure is in a scene built of flat regions (a wall and a floor, a sky and a meadow): the pixels that
    differ from every edge's own colour, their outer few percent trimmed (stray texture). None when nothing or
    nearly everything differs, i.e. a busy picture with no figure to find this way."""
    array = np.asarray(image.convert("RGB"), dtype=np.int16)
    h, w, _ = array.shape
    colours = [np.median(edge, axis=0) for edge in _edges(array)]
    differs = np.min([np.abs(array - c).max(axis=2) for c in colours], axis=0) > tolerance
    share = differs.mean()
    if not 0.02 <= share <= 0.7:
        return None
    ys, xs = np.nonzero(differs)
    lo, hi = 100 * edge_trim, 100 * (1 - edge_trim)
    x0, x1 = np.percentile(xs, [lo, hi])
    y0, y1 = np.percentile(ys, [lo, hi])
    return int(x0), int(y0), min(w, int(x1) + 1), min(h, int(y1) + 1)


def crop_towards(image: Image.Image, box: tuple[int, int, int, int] | None, aspect: float) -> Image.Image:
    """The largest window of ``aspect`` in ``image``, moved over ``box`` (its top kept when it is taller than the
    window: a head matters more than feet); no padding, as a scene has no plain colour to pad with."""
    w, h = image.size
    win_w = min(w, h * aspect)
    win_h = win_w / aspect
    x0, y0, x1, y1 = box or (0, 0, w, h)
    left = min(max((x0 + x1) / 2 - win_w / 2, 0), w - win_w)
    top = (y0 + y1) / 2 - win_h / 2 if y1 - y0 <= win_h else y0 - 0.02 * h
    top = min(max(top, 0), h - win_h)
    return image.crop((round(left), round(top), round(left + win_w), round(top + win_h)))
