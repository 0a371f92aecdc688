"""Page geometry: where each panel goes.

A layout is a grid of letters, one letter per panel, repeated to span rows or columns (the way CSS
grid areas are written), with optional relative column widths and row heights; or rows of panels
with their own relative widths. Named templates are such grids. Edges are whole pixels and the
space between neighbouring panels is exactly the gutter, so pages look even.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .schema import LayoutSpec, RowSpec

TEMPLATES: dict[str, str] = {
    "splash": "A",
    "grid-2x2": "AB/CD",
    "grid-2x3": "AB/CD/EF",
    "grid-3x2": "ABC/DEF",
    "grid-3x3": "ABC/DEF/GHI",
    "grid-3x4": "ABC/DEF/GHI/JKL",
    "2-1-2": "AB/CC/DE",
    "1-2-1": "AA/BC/DD",
    "3-3-3": "ABC/DEF/GHI",
    "splash-strip": "AAA/AAA/BCD",
    "strip-splash": "ABC/DDD/DDD",
    "tall-left": "AB/AC/AD",
    "tall-right": "BA/CA/DA",
    "4-strip": "A/B/C/D",
}


@dataclass(frozen=True)
class Rect:
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x1, self.y1


class LayoutError(ValueError):
    """A layout that cannot be laid out (the message says why)."""


def _split(start: int, length: int, weights: list[float], gutter: int) -> list[tuple[int, int]]:
    """Cut [start, start+length) into len(weights) whole-pixel spans separated by exactly ``gutter``."""
    free = length - gutter * (len(weights) - 1)
    if free < len(weights):
        raise LayoutError(f"no room for {len(weights)} panels in {length}px with a {gutter}px gutter")
    total = sum(weights)
    sizes = [int(free * w / total) for w in weights]
    for i in range(free - sum(sizes)):  # hand the rounding remainder out one pixel at a time
        sizes[i % len(sizes)] += 1
    spans, x = [], start
    for size in sizes:
        spans.append((x, x + size))
        x += size + gutter
    return spans


def parse_grid(text: str) -> list[str]:
    rows = [r.replace(" ", "") for r in text.replace("\n", "/").split("/")]
    rows = [r for r in rows if r]
    if not rows:
        raise LayoutError("the grid is empty")
    if len({len(r) for r in rows}) != 1:
        raise LayoutError("every row of the grid needs the same number of letters")
    return rows


def _grid_rects(rows: list[str], area: Rect, gutter: int, widths: list[float] | None, heights: list[float] | None):
    n_rows, n_cols = len(rows), len(rows[0])
    widths = widths or [1.0] * n_cols
    heights = heights or [1.0] * n_rows
    if len(widths) != n_cols or len(heights) != n_rows:
        raise LayoutError(f"the grid is {n_cols} columns x {n_rows} rows: give that many widths / heights")
    xs = _split(area.x0, area.width, widths, gutter)
    ys = _split(area.y0, area.height, heights, gutter)
    cells: dict[str, list[tuple[int, int]]] = {}
    for r, row in enumerate(rows):
        for c, letter in enumerate(row):
            cells.setdefault(letter, []).append((r, c))
    rects = {}
    for letter, where in cells.items():
        r0, r1 = min(r for r, _ in where), max(r for r, _ in where)
        c0, c1 = min(c for _, c in where), max(c for _, c in where)
        if len(where) != (r1 - r0 + 1) * (c1 - c0 + 1):
            raise LayoutError(f"panel {letter!r} is not a rectangle in the grid")
        rects[letter] = Rect(xs[c0][0], ys[r0][0], xs[c1][1], ys[r1][1])
    return list(rects.values())


def _row_rects(rows: list[RowSpec], area: Rect, gutter: int) -> list[Rect]:
    ys = _split(area.y0, area.height, [r.height for r in rows], gutter)
    rects = []
    for row, (y0, y1) in zip(rows, ys, strict=True):
        rects += [Rect(x0, y0, x1, y1) for x0, x1 in _split(area.x0, area.width, row.widths, gutter)]
    return rects


def reading_order(rects: list[Rect], direction: str) -> list[Rect]:
    """Top to bottom; within a band left to right (or right to left for manga)."""
    sign = -1 if direction == "rtl" else 1
    return sorted(rects, key=lambda r: (r.y0, sign * (r.x1 if sign < 0 else r.x0)))


def panel_count(layout: str | LayoutSpec) -> int:
    spec = resolve(layout)
    if spec.rows is not None:
        return sum(len(r.widths) for r in spec.rows)
    return len({ch for ch in "".join(parse_grid(spec.grid or ""))})


def resolve(layout: str | LayoutSpec) -> LayoutSpec:
    """A named template, ``grid-RxC`` (R rows of C), or ``a-b-c`` (rows of a, b and c equal panels)."""
    if isinstance(layout, LayoutSpec):
        return layout
    if layout in TEMPLATES:
        return LayoutSpec(grid=TEMPLATES[layout])
    if grid := re.fullmatch(r"grid-([1-9])x([1-9])", layout):
        rows, cols = int(grid[1]), int(grid[2])
        return LayoutSpec(rows=[RowSpec(widths=[1.0] * cols) for _ in range(rows)])
    if re.fullmatch(r"[1-9](-[1-9])+", layout):
        return LayoutSpec(rows=[RowSpec(widths=[1.0] * int(n)) for n in layout.split("-")])
    raise LayoutError(
        f"unknown layout {layout!r}; use one of {', '.join(TEMPLATES)}, grid-RxC, row counts such as 3-2-3, or a grid of letters"
    )


def layout_panels(layout: str | LayoutSpec, area: Rect, gutter: int, direction: str = "ltr") -> list[Rect]:
    """Panel rectangles in reading order."""
    spec = resolve(layout)
    if spec.rows is not None:
        rects = _row_rects(spec.rows, area, gutter)
    else:
        rects = _grid_rects(parse_grid(spec.grid or ""), area, gutter, spec.widths, spec.heights)
    return reading_order(rects, direction)
