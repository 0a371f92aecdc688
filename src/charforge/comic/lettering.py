"""Lettering: fit text into balloons and boxes, place balloons where the picture is quiet, draw them.

Text is wrapped greedily at word boundaries and shrunk from the largest letter size down to the
smallest allowed; a balloon is the ellipse that circumscribes its text block with padding, so the
text can never cross its outline. If nothing fits, :class:`LetteringError` says which text in which
panel, instead of silently clipping a line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import CharforgeError
from .fonts import FontSource
from .schema import BalloonSpec, NarrationSpec, SoundSpec

INK = (20, 20, 20)
PAPER = (255, 255, 255)
NARRATION_FILL = (255, 244, 196)
SQRT2 = math.sqrt(2)
IDEAL_ASPECT = 1.6  # width / height of a pleasant speech balloon
MAX_BALLOON = (0.9, 0.6)  # of the panel's width, height


class LetteringError(CharforgeError):
    """Text that cannot fit where it was asked to go."""


@dataclass(frozen=True)
class TextBlock:
    lines: tuple[str, ...]
    size: int
    width: int
    line_height: int

    @property
    def height(self) -> int:
        return self.line_height * len(self.lines)


def wrap(text: str, font, max_width: float) -> list[str] | None:
    """Greedy word wrap; ``None`` when a single word is wider than ``max_width``."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if font.getlength(trial) <= max_width:
                line = trial
                continue
            if font.getlength(word) > max_width:
                return None
            lines.append(line)
            line = word
        lines.append(line)
    return lines


def _block(lines: list[str], font, size: int) -> TextBlock:
    ascent, descent = font.getmetrics()
    width = max((math.ceil(font.getlength(line)) for line in lines), default=0)
    return TextBlock(tuple(lines), size, width, ascent + descent + max(1, size // 8))


def fit_block(text: str, fonts: FontSource, max_size: int, min_size: int, fits, widths: list[float]) -> TextBlock | None:
    """The largest size (then the best width) whose wrapped block ``fits(block)`` returns a score for.

    ``fits`` returns ``None`` when a block does not fit, else a cost; lower is better.
    """
    for size in range(max_size, min_size - 1, -1):
        font = fonts.at(size)
        best: tuple[float, TextBlock] | None = None
        for width in widths:
            lines = wrap(text, font, width)
            if lines is None:
                continue
            block = _block(lines, font, size)
            cost = fits(block)
            if cost is not None and (best is None or cost < best[0]):
                best = (cost, block)
        if best is not None:
            return best[1]
    return None


# -- balloons -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Balloon:
    """An elliptical balloon: centre and semi-axes in panel pixels, its text block and how it points."""

    style: str
    cx: float
    cy: float
    a: float
    b: float
    block: TextBlock
    tail: tuple[float, float] | None
    margin: float  # extra room outside the ellipse (shout spikes, thought bumps)

    @property
    def box(self) -> tuple[float, float, float, float]:
        m = self.margin
        return self.cx - self.a - m, self.cy - self.b - m, self.cx + self.a + m, self.cy + self.b + m

    @property
    def text_box(self) -> tuple[float, float, float, float]:
        w, h = self.block.width, self.block.height
        return self.cx - w / 2, self.cy - h / 2, self.cx + w / 2, self.cy + h / 2

    def contains(self, x: float, y: float) -> bool:
        return ((x - self.cx) / self.a) ** 2 + ((y - self.cy) / self.b) ** 2 <= 1.0


def _axes(block: TextBlock, pad: float) -> tuple[float, float]:
    # The ellipse through the corners of a w x h rectangle with the same aspect has semi-axes w/sqrt2, h/sqrt2.
    return block.width / SQRT2 + pad, block.height / SQRT2 + pad


def size_balloon(spec: BalloonSpec, fonts: FontSource, panel: tuple[int, int], max_size: int, min_size: int, where: str):
    pw, ph = panel
    pad = max(4.0, 0.012 * min(pw, ph) + 2)
    margin = {"shout": 0.035 * min(pw, ph) + 4, "thought": 0.03 * min(pw, ph) + 3}.get(spec.style, 0.0)
    limit_w, limit_h = MAX_BALLOON[0] * pw / 2 - margin, MAX_BALLOON[1] * ph / 2 - margin

    def fits(block: TextBlock) -> float | None:
        a, b = _axes(block, pad)
        if a > limit_w or b > limit_h:
            return None
        return abs(math.log((a / b) / IDEAL_ASPECT))

    widths = [limit_w * SQRT2 * f for f in (1.0, 0.8, 0.65, 0.5, 0.4, 0.3, 0.22)]
    block = fit_block(spec.text, fonts, max_size, min_size, fits, widths)
    if block is None:
        raise LetteringError(
            f"{where}: balloon text {_short(spec.text)} does not fit even at {min_size}px; "
            "shorten it, split it into two balloons, lower lettering.min_size or give the panel more room"
        )
    a, b = _axes(block, pad)
    return a, b, margin, block


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def busyness(image: Image.Image) -> np.ndarray:
    """Edge energy per pixel: flat background is cheap to cover, the character's outlines are not."""
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    energy = np.zeros_like(grey)
    energy[:, 1:] += np.abs(np.diff(grey, axis=1))
    energy[1:, :] += np.abs(np.diff(grey, axis=0))
    blurred = Image.fromarray((np.clip(energy * 4, 0, 1) * 255).astype(np.uint8)).filter(ImageFilter.BoxBlur(3))
    return np.asarray(blurred, dtype=np.float32) / 255.0 + 0.02


def _integral(values: np.ndarray) -> np.ndarray:
    out = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    out[1:, 1:] = values.cumsum(0).cumsum(1)
    return out


def _box_sum(table: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> float:
    return float(table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0])


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


# How much a balloon over the character costs, against 1 for a fully busy spot and 50 for one over another balloon:
# it keeps off the figure wherever the panel has room, and covers it only where nothing else is free.
SUBJECT_COST = 8.0


def choose_spot(
    size: tuple[float, float],
    panel: Image.Image,
    taken: list[tuple[float, ...]],
    direction: str,
    order: int,
    avoid: tuple[float, ...] | None = None,
) -> tuple[float, float]:
    """Centre of the least busy, free spot for a box of ``size``, off the ``avoid`` box (the character) where it
    can be; earlier balloons sit nearer the reading start."""
    pw, ph = panel.size
    w, h = min(size[0], pw - 2), min(size[1], ph - 2)
    table = _integral(busyness(panel))
    step = max(2, int(min(pw, ph) / 28))
    best, best_cost = (pw / 2, h / 2 + 1), math.inf
    area = max(1.0, w * h)
    for y0 in range(1, max(2, int(ph - h)), step):
        for x0 in range(1, max(2, int(pw - w)), step):
            box = (x0, y0, x0 + w, y0 + h)
            busy = _box_sum(table, x0, y0, int(x0 + w), int(y0 + h)) / area
            clash = sum(_overlap(box, t) for t in taken) / area
            on_subject = _overlap(box, avoid) / area if avoid is not None else 0.0
            cx, cy = x0 + w / 2, y0 + h / 2
            start = (pw - cx) / pw if direction == "rtl" else cx / pw
            cost = busy + 50.0 * clash + SUBJECT_COST * on_subject + 0.08 * cy / ph + 0.04 * start * (1 if order == 0 else 0.3)
            if cost < best_cost:
                best, best_cost = (cx, cy), cost
    return best


def _tail_tip(spec: BalloonSpec, cx: float, cy: float, a: float, b: float, panel: tuple[int, int]):
    pw, ph = panel
    if isinstance(spec.tail, tuple):
        return spec.tail[0] * pw, spec.tail[1] * ph
    reach = 0.45 * max(a, b)
    return {
        "bottom": (cx + 0.25 * a, cy + b + reach),
        "top": (cx + 0.25 * a, cy - b - reach),
        "left": (cx - a - reach, cy + 0.4 * b),
        "right": (cx + a + reach, cy + 0.4 * b),
        "none": None,
    }[spec.tail or "bottom"]


def layout_balloon(
    spec: BalloonSpec,
    fonts: FontSource,
    panel: Image.Image,
    taken: list[tuple[float, ...]],
    *,
    max_size: int,
    min_size: int,
    direction: str,
    order: int,
    where: str,
    avoid: tuple[float, ...] | None = None,
) -> Balloon:
    a, b, margin, block = size_balloon(spec, fonts, panel.size, max_size, min_size, where)
    pw, ph = panel.size
    if spec.at is not None:
        cx, cy = spec.at[0] * pw, spec.at[1] * ph
    else:
        cx, cy = choose_spot((2 * (a + margin), 2 * (b + margin)), panel, taken, direction, order, avoid)
    # keep the whole balloon inside the panel
    cx = min(max(cx, a + margin + 1), pw - a - margin - 1)
    cy = min(max(cy, b + margin + 1), ph - b - margin - 1)
    tip = _tail_tip(spec, cx, cy, a, b, panel.size)
    if tip is not None:
        tip = (min(max(tip[0], 2), pw - 2), min(max(tip[1], 2), ph - 2))
    return Balloon(spec.style, cx, cy, a, b, block, tip, margin)


def _shape_mask(balloon: Balloon, size: tuple[int, int], scale: int = 1) -> Image.Image:
    mask = Image.new("L", (size[0] * scale, size[1] * scale), 0)
    draw = ImageDraw.Draw(mask)
    s = scale
    cx, cy, a, b = balloon.cx * s, balloon.cy * s, balloon.a * s, balloon.b * s
    if balloon.style == "shout":
        spikes, points = 18, []
        for i in range(spikes * 2):
            t = math.pi * i / spikes
            r = 1.0 if i % 2 else 1.0 + balloon.margin * s / max(1.0, min(a, b)) * (0.7 + 0.3 * ((i // 2) % 2))
            points.append((cx + a * r * math.cos(t), cy + b * r * math.sin(t)))
        draw.polygon(points, fill=255)
        draw.ellipse((cx - a, cy - b, cx + a, cy + b), fill=255)
    else:
        draw.ellipse((cx - a, cy - b, cx + a, cy + b), fill=255)
        if balloon.style == "thought":
            bumps = max(8, int(2 * math.pi * math.sqrt((a * a + b * b) / 2) / (balloon.margin * s * 2.2 + 1)))
            r = balloon.margin * s * 1.2
            for i in range(bumps):
                t = 2 * math.pi * i / bumps
                draw.ellipse(
                    (cx + a * math.cos(t) - r, cy + b * math.sin(t) - r, cx + a * math.cos(t) + r, cy + b * math.sin(t) + r),
                    fill=255,
                )
    if balloon.tail is not None:
        tx, ty = balloon.tail[0] * s, balloon.tail[1] * s
        angle = math.atan2((ty - cy) / max(b, 1), (tx - cx) / max(a, 1))
        if balloon.style == "thought":
            for k, f in enumerate((0.35, 0.6, 0.85)):
                bx = cx + a * math.cos(angle) + (tx - cx - a * math.cos(angle)) * f
                by = cy + b * math.sin(angle) + (ty - cy - b * math.sin(angle)) * f
                r = balloon.margin * s * (0.9 - 0.25 * k)
                draw.ellipse((bx - r, by - r, bx + r, by + r), fill=255)
        elif not balloon.contains(balloon.tail[0], balloon.tail[1]):
            spread = 0.16
            base = [(cx + 0.8 * a * math.cos(angle + d), cy + 0.8 * b * math.sin(angle + d)) for d in (-spread, spread)]
            draw.polygon([base[0], (tx, ty), base[1]], fill=255)
    return mask


def draw_balloon(panel: Image.Image, balloon: Balloon, fonts: FontSource, line: int = 3) -> None:
    """Paint the balloon (white inside, ink outline, tail merged) and its centred text onto ``panel``."""
    shape = _shape_mask(balloon, panel.size)
    grown = shape.filter(ImageFilter.MaxFilter(2 * line + 1))
    ring = np.asarray(grown, dtype=np.int16) - np.asarray(shape, dtype=np.int16)
    if balloon.style == "whisper":  # dashed outline
        ys, xs = np.mgrid[0 : panel.size[1], 0 : panel.size[0]]
        angle = np.arctan2((ys - balloon.cy) / balloon.b, (xs - balloon.cx) / balloon.a)
        ring = ring * ((np.floor(angle / (math.pi / 24)) % 2) == 0)
    panel.paste(PAPER, mask=shape)
    panel.paste(INK, mask=Image.fromarray(np.clip(ring, 0, 255).astype(np.uint8)))
    draw_text(panel, balloon.block, fonts, balloon.text_box, centre=True)


def draw_text(panel: Image.Image, block: TextBlock, fonts: FontSource, box: tuple[float, ...], *, centre: bool) -> None:
    draw = ImageDraw.Draw(panel)
    font = fonts.at(block.size)
    x0, y0, x1, _ = box
    for i, text in enumerate(block.lines):
        width = font.getlength(text)
        x = (x0 + x1 - width) / 2 if centre else x0
        draw.text((x, y0 + i * block.line_height), text, font=font, fill=INK, anchor="la")


# -- narration and sound effects ------------------------------------------------------------------
@dataclass(frozen=True)
class Caption:
    box: tuple[float, float, float, float]
    block: TextBlock
    pad: float


def layout_narration(
    spec: NarrationSpec, fonts: FontSource, panel: tuple[int, int], *, max_size: int, min_size: int, inset: int, where: str
) -> Caption:
    pw, ph = panel
    pad = max(4.0, 0.015 * min(pw, ph) + 2)
    limit_w, limit_h = 0.94 * pw - 2 * pad - 2 * inset, 0.42 * ph - 2 * pad

    def fits(block: TextBlock) -> float | None:
        return None if block.width > limit_w or block.height > limit_h else block.height / limit_h

    widths = [limit_w * f for f in (1.0, 0.8, 0.6)]
    block = fit_block(spec.text, fonts, max_size, min_size, fits, widths)
    if block is None:
        raise LetteringError(f"{where}: narration {_short(spec.text)} does not fit even at {min_size}px; shorten it")
    w, h = block.width + 2 * pad, block.height + 2 * pad
    x0 = inset if spec.corner.endswith("left") else pw - inset - w
    y0 = inset if spec.corner.startswith("top") else ph - inset - h
    return Caption((x0, y0, x0 + w, y0 + h), block, pad)


def draw_narration(panel: Image.Image, caption: Caption, fonts: FontSource, line: int = 2) -> None:
    draw = ImageDraw.Draw(panel)
    draw.rectangle(caption.box, fill=NARRATION_FILL, outline=INK, width=line)
    x0, y0, x1, y1 = caption.box
    draw_text(panel, caption.block, fonts, (x0 + caption.pad, y0 + caption.pad, x1 - caption.pad, y1), centre=False)


def draw_sound(panel: Image.Image, spec: SoundSpec, fonts: FontSource, colour: tuple[int, int, int]) -> None:
    """Big outlined letters, tilted, centred on ``spec.at``; shrunk to the panel's width if needed."""
    pw, ph = panel.size
    size = max(8, int(spec.size * ph))
    font = fonts.at(size)
    while size > 8 and font.getlength(spec.text) > 0.9 * pw:
        size = int(size * 0.9)
        font = fonts.at(size)
    stroke = max(2, size // 12)
    left, top, right, bottom = font.getbbox(spec.text, stroke_width=stroke)
    layer = Image.new("RGBA", (right - left + 2 * stroke, bottom - top + 2 * stroke), (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(
        (stroke - left, stroke - top), spec.text, font=font, fill=colour + (255,), stroke_width=stroke, stroke_fill=INK + (255,)
    )
    layer = layer.rotate(spec.angle, expand=True, resample=Image.Resampling.BICUBIC)
    # centred on spec.at, but moved inwards rather than cut off at the panel's edge
    x = int(min(max(spec.at[0] * pw - layer.width / 2, 0), max(0, pw - layer.width)))
    y = int(min(max(spec.at[1] * ph - layer.height / 2, 0), max(0, ph - layer.height)))
    panel.paste(layer, (x, y), layer)
