"""Palette faithfulness without a model: CIEDE2000 between an image's dominant colours and the
character's palette (the pooled dominant colours of its reference images, as `charforge stats`
computes them).

Each colour is matched to its nearest counterpart, weighted by its share, and the distance is
averaged both ways, so a picture that drops one of the character's colours is penalised as much as
one that adds a foreign colour. Flat backgrounds are excluded (``subject_pixels``), so a new
background alone does not count as off-palette.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..data.stats import Swatch, dominant_colours, subject_pixels

PALETTE_SIDE = 128  # pictures are sampled down to this (nearest pixel: no blended colours) before k-means


def image_palette(image: Image.Image, k: int = 6) -> list[Swatch]:
    if max(image.size) > PALETTE_SIDE:
        scale = PALETTE_SIDE / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.NEAREST)
    pixels, _, _ = subject_pixels(image)
    return dominant_colours(pixels, k=k)


def reference_palette(references: Sequence[Image.Image], k: int = 6) -> list[Swatch]:
    """The references' dominant colours pooled, each share divided by the number of references."""
    pooled = [s for ref in references for s in image_palette(ref, k)]
    for swatch in pooled:
        swatch.share /= len(references)
    return pooled


def _one_way(a: Sequence[Swatch], b: Sequence[Swatch]) -> float:
    from skimage.color import deltaE_ciede2000

    lab_b = np.array([s.lab for s in b])
    total = sum(s.share for s in a)
    return float(sum(s.share * deltaE_ciede2000(np.array(s.lab)[None], lab_b).min() for s in a) / total)


def palette_distance_to(image: Image.Image, palette: Sequence[Swatch], k: int = 6) -> float:
    """Symmetric share-weighted CIEDE2000 between ``image``'s palette and ``palette`` (lower is closer)."""
    own = image_palette(image, k)
    return (_one_way(own, palette) + _one_way(palette, own)) / 2


def palette_distance(images: Sequence[Image.Image], references: Sequence[Image.Image], k: int = 6) -> float:
    """Mean palette distance of ``images`` to the references' pooled palette."""
    pooled = reference_palette(references, k)
    return float(np.mean([palette_distance_to(image, pooled, k) for image in images]))
