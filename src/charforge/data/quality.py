"""Per-image quality checks and (near-)duplicate detection, each with a reason a person can act on."""

from __future__ import annotations

import numpy as np
from PIL import Image

BLUR_THRESHOLD = 0.15  # edge sharpness below this (see ``sharpness``) is reported as blurred
BLANK_SHARE = 0.005  # subject covering less than 0.5 % of the picture
NEAR_DUPLICATE_BITS = 6  # of 64 dHash bits


def dhash(image: Image.Image, size: int = 8) -> int:
    """Difference hash (Krawetz): 64 bits saying whether each pixel is brighter than its right neighbour."""
    grey = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def sharpness(image: Image.Image) -> float:
    """Steepness of the strongest edges relative to the image's contrast (about 0-4) at 256 px.

    The 99.5th percentile of the Laplacian rather than its variance, because flat-coloured drawings
    have few edges (variance would call a crisp cartoon blurred); divided by the 1-99 % brightness
    range so a pale pencil sketch is not mistaken for a blurred one.
    """
    grey = image.convert("L")
    grey.thumbnail((256, 256), Image.Resampling.LANCZOS)
    g = np.asarray(grey, dtype=np.float32)
    laplacian = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    low, high = np.percentile(g, [1, 99])
    return float(np.percentile(np.abs(laplacian), 99.5) / max(high - low, 1.0))


def find_duplicates(hashes: dict[str, int], max_bits: int = NEAR_DUPLICATE_BITS) -> list[tuple[str, str, int]]:
    """Pairs (first, later, distance) whose hashes differ by at most ``max_bits``."""
    names = list(hashes)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            distance = hamming(hashes[a], hashes[b])
            if distance <= max_bits:
                pairs.append((a, b, distance))
    return pairs
