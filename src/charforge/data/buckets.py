"""Aspect-ratio buckets (as in kohya-ss and NovelAI): sizes of about resolution² pixels, sides in
steps of 64, so tall and wide drawings train without being cropped square."""

from __future__ import annotations


def make_buckets(resolution: int, step: int = 64, max_ratio: float = 2.0) -> list[tuple[int, int]]:
    area = resolution * resolution
    buckets = set()
    width = step
    while width <= resolution * max_ratio:
        height = min(int(area / width) // step * step, int(resolution * max_ratio) // step * step)
        if height >= step and max(width / height, height / width) <= max_ratio:
            buckets.add((width, height))
        width += step
    return sorted(buckets)


def nearest_bucket(aspect: float, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose width/height is closest to ``aspect`` (in log space, so 2:1 and 1:2 are equally far)."""
    import math

    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - math.log(aspect)), -b[0] * b[1]))
