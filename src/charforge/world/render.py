"""Draws mini-world characters with Pillow: flat colours, dark outlines, chibi proportions.

Everything is drawn in unit coordinates (0..1, y down) on a canvas ``supersample`` times larger
than asked and then downsampled, which gives clean anti-aliased edges at 64 px. A seed moves and
scales the figure a little and places background details, so every render is reproducible and no
two are pixel-identical.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .attributes import BACKGROUNDS, HAIR_COLOURS, OUTFIT_COLOURS, RGB, SKIN_TONES, Character, Scene

OUTLINE: RGB = (36, 30, 40)
SHOE: RGB = (60, 44, 44)
TROUSERS: RGB = (84, 88, 104)
SHIRT: RGB = (250, 250, 250)
HAT: RGB = (44, 52, 96)
BOW: RGB = (232, 40, 112)
GOLD: RGB = (244, 192, 40)
RAINBOW: tuple[RGB, ...] = ((232, 56, 56), (246, 150, 40), (250, 226, 60), (70, 190, 90), (70, 130, 236))
MOUTH: RGB = (150, 40, 60)


def _darker(colour: RGB, factor: float = 0.72) -> RGB:
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


@dataclass
class _Pen:
    """Unit-coordinate drawing on a supersampled canvas, with an optional zoom (for portraits)."""

    draw: ImageDraw.ImageDraw
    size: int
    zoom: float = 1.0
    centre: tuple[float, float] = (0.5, 0.5)  # unit point shown at the canvas centre
    dx: float = 0.0
    dy: float = 0.0

    def xy(self, x: float, y: float) -> tuple[float, float]:
        cx, cy = self.centre
        return (((x + self.dx - cx) * self.zoom + 0.5) * self.size, ((y + self.dy - cy) * self.zoom + 0.5) * self.size)

    def w(self, width: float) -> int:
        return max(1, round(width * self.zoom * self.size))

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [*self.xy(x0, y0), *self.xy(x1, y1)]

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: RGB | None, outline: bool = True) -> None:
        self.draw.ellipse(
            self.box(cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=OUTLINE if outline else None, width=self.w(0.008)
        )

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB, radius: float = 0.02, outline: bool = True) -> None:
        self.draw.rounded_rectangle(
            self.box(x0, y0, x1, y1), radius=self.w(radius), fill=fill, outline=OUTLINE if outline else None, width=self.w(0.008)
        )

    def polygon(self, points: list[tuple[float, float]], fill: RGB, outline: bool = True) -> None:
        self.draw.polygon(
            [self.xy(x, y) for x, y in points], fill=fill, outline=OUTLINE if outline else None, width=self.w(0.008)
        )

    def line(self, points: list[tuple[float, float]], fill: RGB, width: float) -> None:
        self.draw.line([self.xy(x, y) for x, y in points], fill=fill, width=self.w(width), joint="curve")

    def limb(self, points: list[tuple[float, float]], fill: RGB, width: float) -> None:
        """A thick outlined stroke with round ends (arms, legs)."""
        self.line(points, OUTLINE, width + 0.016)
        for x, y in (points[0], points[-1]):
            self.ellipse(x, y, width / 2 + 0.008, width / 2 + 0.008, OUTLINE, outline=False)
        self.line(points, fill, width)
        for x, y in (points[0], points[-1]):
            self.ellipse(x, y, width / 2, width / 2, fill, outline=False)

    def arc(self, cx: float, cy: float, rx: float, ry: float, start: float, end: float, fill: RGB, width: float) -> None:
        self.draw.arc(self.box(cx - rx, cy - ry, cx + rx, cy + ry), start, end, fill=fill, width=self.w(width))

    def chord(self, cx: float, cy: float, rx: float, ry: float, start: float, end: float, fill: RGB) -> None:
        self.draw.chord(self.box(cx - rx, cy - ry, cx + rx, cy + ry), start, end, fill=fill, outline=OUTLINE, width=self.w(0.008))


# -- backgrounds -------------------------------------------------------------------------------------
def _background(pen: _Pen, name: str, rng: random.Random) -> None:
    base = BACKGROUNDS[name]
    pen.draw.rectangle([0, 0, pen.size, pen.size], fill=base)
    plain = _Pen(pen.draw, pen.size)  # backgrounds are not zoomed with portraits
    if name == "pink room":
        plain.draw.rectangle(plain.box(0, 0.8, 1, 1), fill=(222, 150, 184))
        x = rng.uniform(0.04, 0.12)
        plain.rect(x, 0.12, x + 0.14, 0.3, (255, 240, 246), radius=0.005)
    elif name == "teal forest":
        for _ in range(5):
            x = rng.uniform(0.0, 1.0)
            h = rng.uniform(0.25, 0.4)
            plain.polygon([(x - 0.1, 0.82), (x + 0.1, 0.82), (x, 0.82 - h)], (26, 100, 92), outline=False)
        plain.draw.rectangle(plain.box(0, 0.8, 1, 1), fill=(32, 112, 96))
    elif name == "blue sky":
        for _ in range(2):
            x, y = rng.uniform(0.1, 0.9), rng.uniform(0.06, 0.25)
            plain.ellipse(x, y, 0.09, 0.035, (255, 255, 255), outline=False)
        plain.draw.rectangle(plain.box(0, 0.84, 1, 1), fill=(110, 190, 90))


# -- the figure -------------------------------------------------------------------------------------
@dataclass
class _Body:
    """Where the parts go for one pose (unit coordinates)."""

    head: tuple[float, float]
    torso: tuple[float, float, float, float]
    arms: list[list[tuple[float, float]]]
    legs: list[list[tuple[float, float]]]
    facing: str  # front, side, looking-back, back
    shadow: bool = False


HEAD_R = 0.16


def _body(pose: str) -> _Body:
    sl, sr = (0.395, 0.5), (0.605, 0.5)
    straight_legs = [[(0.445, 0.69), (0.445, 0.88)], [(0.555, 0.69), (0.555, 0.88)]]
    arms_down = [[sl, (0.33, 0.67)], [sr, (0.67, 0.67)]]
    if pose in ("standing", "portrait"):
        return _Body((0.5, 0.3), (0.38, 0.46, 0.62, 0.71), arms_down, straight_legs, "front")
    if pose == "arms up":
        return _Body((0.5, 0.3), (0.38, 0.46, 0.62, 0.71), [[sl, (0.25, 0.25)], [sr, (0.75, 0.25)]], straight_legs, "front")
    if pose == "waving":
        arms = [[sl, (0.33, 0.67)], [sr, (0.72, 0.4), (0.76, 0.24)]]
        return _Body((0.5, 0.3), (0.38, 0.46, 0.62, 0.71), arms, straight_legs, "front")
    if pose == "sitting":
        legs = [[(0.445, 0.8), (0.3, 0.84), (0.27, 0.9)], [(0.555, 0.8), (0.7, 0.84), (0.73, 0.9)]]
        arms = [[(0.395, 0.62), (0.34, 0.8)], [(0.605, 0.62), (0.66, 0.8)]]
        return _Body((0.5, 0.42), (0.38, 0.58, 0.62, 0.82), arms, legs, "front")
    if pose == "jumping":
        legs = [[(0.445, 0.61), (0.36, 0.7), (0.4, 0.77)], [(0.555, 0.61), (0.64, 0.7), (0.6, 0.77)]]
        arms = [[(0.395, 0.42), (0.27, 0.32), (0.22, 0.2)], [(0.605, 0.42), (0.73, 0.32), (0.78, 0.2)]]
        return _Body((0.5, 0.22), (0.38, 0.38, 0.62, 0.63), arms, legs, "front", shadow=True)
    if pose == "side view":
        legs = [[(0.49, 0.69), (0.47, 0.88)], [(0.51, 0.69), (0.55, 0.88)]]
        return _Body((0.5, 0.3), (0.43, 0.46, 0.57, 0.71), [[(0.5, 0.5), (0.53, 0.67)]], legs, "side")
    if pose == "looking back":
        legs = [[(0.47, 0.69), (0.46, 0.88)], [(0.53, 0.69), (0.54, 0.88)]]
        return _Body(
            (0.5, 0.3),
            (0.41, 0.46, 0.59, 0.71),
            [[(0.415, 0.5), (0.37, 0.67)], [(0.585, 0.5), (0.63, 0.67)]],
            legs,
            "looking-back",
        )
    if pose == "back view":
        return _Body((0.5, 0.3), (0.38, 0.46, 0.62, 0.71), arms_down, straight_legs, "back")
    raise ValueError(pose)


def _legs(pen: _Pen, body: _Body, character: Character) -> None:
    outfit = OUTFIT_COLOURS[character.outfit_colour]
    skin = SKIN_TONES[character.skin]
    leg_colour = {"onesie": outfit, "overalls": outfit, "jacket and trousers": TROUSERS, "dress": skin}[character.outfit_type]
    for leg in body.legs:
        pen.limb(leg, leg_colour, 0.075)
        fx, fy = leg[-1]
        toe = 0.02 if body.facing == "side" else 0.0
        pen.ellipse(fx + toe, fy + 0.015, 0.045, 0.025, SHOE)


def _arms(pen: _Pen, body: _Body, character: Character) -> None:
    outfit = OUTFIT_COLOURS[character.outfit_colour]
    skin = SKIN_TONES[character.skin]
    sleeve = {"onesie": outfit, "jacket and trousers": outfit, "dress": outfit, "overalls": SHIRT}[character.outfit_type]
    long_sleeves = character.outfit_type in ("onesie", "jacket and trousers")
    for arm in body.arms:
        if long_sleeves:
            pen.limb(arm, sleeve, 0.06)
        else:
            pen.limb(arm, skin, 0.06)
            (x0, y0), (x1, y1) = arm[0], arm[1]
            pen.limb([(x0, y0), (x0 + (x1 - x0) * 0.4, y0 + (y1 - y0) * 0.4)], sleeve, 0.066)
        hx, hy = arm[-1]
        pen.ellipse(hx, hy, 0.032, 0.032, skin)


def _torso(pen: _Pen, body: _Body, character: Character) -> None:
    outfit = OUTFIT_COLOURS[character.outfit_colour]
    x0, y0, x1, y1 = body.torso
    kind = character.outfit_type
    front = body.facing in ("front", "side")
    if kind == "overalls":
        pen.rect(x0, y0, x1, y1, SHIRT, radius=0.04)
        bib_top = y0 + (y1 - y0) * (0.35 if front else 0.5)
        pen.rect(x0 + 0.02, bib_top, x1 - 0.02, y1, outfit, radius=0.02)
        for sx in (x0 + 0.035, x1 - 0.035):
            pen.line([(sx, y0), (sx, bib_top)], outfit, 0.022)
        if front:
            cx = (x0 + x1) / 2
            pen.rect(cx - 0.035, bib_top + 0.03, cx + 0.035, bib_top + 0.08, _darker(outfit), radius=0.01)
    elif kind == "dress":
        pen.rect(x0, y0, x1, y0 + (y1 - y0) * 0.6, outfit, radius=0.04)
        waist = y0 + (y1 - y0) * 0.5
        flare = 0.07 if body.facing != "side" else 0.05
        pen.polygon([(x0 + 0.01, waist), (x1 - 0.01, waist), (x1 + flare, y1 + 0.06), (x0 - flare, y1 + 0.06)], outfit)
        pen.line([(x0 + 0.01, waist), (x1 - 0.01, waist)], _darker(outfit), 0.012)
    else:
        pen.rect(x0, y0, x1, y1, outfit, radius=0.04)
        cx = (x0 + x1) / 2
        if kind == "jacket and trousers" and front:
            pen.polygon([(cx - 0.04, y0 + 0.005), (cx + 0.04, y0 + 0.005), (cx, y1 - 0.01)], SHIRT, outline=False)
            pen.line([(cx, y0 + 0.06), (cx, y1 - 0.005)], _darker(outfit), 0.01)
        elif kind == "onesie" and front:
            pen.line([(cx, y0 + 0.02), (cx, y1 - 0.02)], _darker(outfit), 0.012)
            pen.ellipse(cx, y0 + 0.04, 0.012, 0.012, _darker(outfit), outline=False)


def _hair_back(pen: _Pen, character: Character, hx: float, hy: float, facing: str) -> None:
    hair = HAIR_COLOURS[character.hair_colour]
    r = HEAD_R
    style = character.hair_style
    if style == "long":
        pen.rect(hx - r * 1.12, hy - r * 0.3, hx + r * 1.12, hy + r * 1.9, hair, radius=0.06)
    elif style == "ponytail":
        side = -1 if facing == "side" else 1
        pen.ellipse(hx + side * r * 1.1, hy + r * 0.7, r * 0.35, r * 0.8, hair)
    elif style == "pigtails":
        for side in (-1, 1):
            if facing == "side" and side == 1:
                continue
            pen.ellipse(hx + side * r * 1.15, hy + r * 0.45, r * 0.4, r * 0.6, hair)


def _accessory(pen: _Pen, character: Character, hx: float, hy: float, facing: str) -> None:
    r = HEAD_R
    hair = HAIR_COLOURS[character.hair_colour]
    top = hy - r
    shift = 0.03 if facing == "side" else (-0.02 if facing == "looking-back" else 0.0)
    cx = hx + shift
    acc = character.accessory
    if acc == "unicorn horn":
        h, base = r * 0.95, r * 0.32
        for i, colour in enumerate(RAINBOW):
            f0, f1 = i / len(RAINBOW), (i + 1) / len(RAINBOW)
            y0, y1 = top + 0.015 - h * f0, top + 0.015 - h * f1
            w0, w1 = base * (1 - f0), base * (1 - f1)
            pen.polygon([(cx - w0, y0), (cx + w0, y0), (cx + w1, y1), (cx - w1, y1)], colour, outline=False)
        pen.draw.polygon(
            [pen.xy(cx - base, top + 0.015), pen.xy(cx + base, top + 0.015), pen.xy(cx, top - h)],
            outline=OUTLINE,
            width=pen.w(0.008),
        )
    elif acc == "cat ears":
        for side in (-1, 1):
            ex = hx + side * r * 0.62
            pen.polygon(
                [(ex - r * 0.32, top + r * 0.3), (ex + r * 0.32, top + r * 0.3), (ex + side * r * 0.1, top - r * 0.45)], hair
            )
            pen.polygon(
                [(ex - r * 0.16, top + r * 0.22), (ex + r * 0.16, top + r * 0.22), (ex + side * r * 0.07, top - r * 0.2)],
                (250, 170, 190),
                outline=False,
            )
    elif acc == "hat":
        pen.ellipse(cx, top + r * 0.22, r * 1.35, r * 0.22, HAT)
        pen.chord(cx, top + r * 0.2, r * 0.85, r * 0.75, 180, 360, HAT)
        pen.rect(cx - r * 0.82, top + r * 0.02, cx + r * 0.82, top + r * 0.16, (240, 220, 120), radius=0.0, outline=False)
    elif acc == "bow":
        bx, by = hx + r * 0.55, top + r * 0.2
        pen.polygon([(bx, by), (bx - r * 0.5, by - r * 0.3), (bx - r * 0.5, by + r * 0.3)], BOW)
        pen.polygon([(bx, by), (bx + r * 0.5, by - r * 0.3), (bx + r * 0.5, by + r * 0.3)], BOW)
        pen.ellipse(bx, by, r * 0.14, r * 0.14, BOW)
    elif acc == "crown":
        y0, y1 = top - r * 0.45, top + r * 0.15
        w = r * 0.62
        points = [
            (cx - w, y1),
            (cx - w, y0),
            (cx - w / 2, y0 + r * 0.3),
            (cx, y0 - r * 0.05),
            (cx + w / 2, y0 + r * 0.3),
            (cx + w, y0),
            (cx + w, y1),
        ]
        pen.polygon(points, GOLD)
        pen.ellipse(cx, y1 - r * 0.2, r * 0.09, r * 0.09, (220, 40, 60), outline=False)


def _face(pen: _Pen, expression: str, fx: float, fy: float, eyes: list[float]) -> None:
    """Eyes, brows and mouth; ``eyes`` are the x positions of the visible eyes, ``fx`` the mouth's."""
    r = HEAD_R
    ey = fy + r * 0.05
    for ex in eyes:
        if expression == "eyes closed":
            pen.arc(ex, ey - r * 0.05, r * 0.16, r * 0.12, 20, 160, OUTLINE, 0.012)
        elif expression == "surprised":
            pen.ellipse(ex, ey, r * 0.14, r * 0.19, (255, 255, 255))
            pen.ellipse(ex, ey, r * 0.07, r * 0.09, OUTLINE, outline=False)
        else:
            pen.ellipse(ex, ey, r * 0.09, r * 0.14, OUTLINE, outline=False)
            pen.ellipse(ex + r * 0.03, ey - r * 0.05, r * 0.03, r * 0.03, (255, 255, 255), outline=False)
        side = 1 if ex > fx else -1
        by = ey - r * 0.3
        if expression == "angry":
            pen.line([(ex - side * r * 0.2, by - r * 0.12), (ex + side * r * 0.2, by + r * 0.08)], OUTLINE, 0.016)
        elif expression == "sad":
            pen.line([(ex - side * r * 0.2, by + r * 0.08), (ex + side * r * 0.2, by - r * 0.1)], OUTLINE, 0.014)
        elif expression == "surprised":
            pen.arc(ex, by - r * 0.02, r * 0.18, r * 0.1, 200, 340, OUTLINE, 0.012)
    my = fy + r * 0.5
    if expression == "smiling":
        pen.chord(fx, my - r * 0.12, r * 0.3, r * 0.24, 0, 180, MOUTH)
    elif expression == "sad":
        pen.arc(fx, my + r * 0.12, r * 0.26, r * 0.18, 200, 340, OUTLINE, 0.016)
    elif expression == "surprised":
        pen.ellipse(fx, my, r * 0.14, r * 0.18, MOUTH)
    elif expression == "angry":
        pen.rect(fx - r * 0.24, my - r * 0.03, fx + r * 0.24, my + r * 0.09, MOUTH, radius=0.004)
    else:  # eyes closed: a calm small smile
        pen.arc(fx, my - r * 0.1, r * 0.2, r * 0.14, 20, 160, OUTLINE, 0.014)


def _head(pen: _Pen, character: Character, scene: Scene, hx: float, hy: float, facing: str) -> None:
    hair = HAIR_COLOURS[character.hair_colour]
    skin = SKIN_TONES[character.skin]
    r = HEAD_R
    if facing == "back":
        pen.ellipse(hx, hy, r, r, hair)
        pen.arc(hx, hy + r * 0.1, r * 0.5, r * 0.7, 200, 340, _darker(hair), 0.01)
        return
    if facing == "looking-back":
        pen.ellipse(hx, hy, r, r, skin)
        pen.chord(hx - r * 0.06, hy, r * 1.02, r * 1.02, 100, 350, hair)  # hair covers all but a sliver
        pen.ellipse(hx + r * 0.8, hy + r * 0.05, r * 0.05, r * 0.09, OUTLINE, outline=False)
        return
    pen.ellipse(hx, hy, r, r, skin)
    if facing == "side":
        pen.ellipse(hx + r * 0.98, hy + r * 0.15, r * 0.09, r * 0.09, skin, outline=False)  # nose
        pen.chord(hx - r * 0.05, hy - r * 0.02, r * 1.06, r * 1.05, 80, 330, hair)
        pen.ellipse(hx - r * 0.05, hy + r * 0.12, r * 0.13, r * 0.16, skin)  # ear
        _face(pen, scene.expression, hx + r * 0.62, hy, [hx + r * 0.5])
        return
    # front: bangs over the top, locks at the sides
    pen.chord(hx, hy - r * 0.02, r * 1.07, r * 1.06, 192, 348, hair)
    if character.hair_style != "short":
        for side in (-1, 1):
            pen.rect(
                hx + side * r * 1.02 - r * 0.2, hy - r * 0.4, hx + side * r * 1.02 + r * 0.2, hy + r * 0.55, hair, radius=0.02
            )
    else:
        for side in (-1, 1):
            pen.ellipse(hx + side * r * 0.9, hy - r * 0.2, r * 0.2, r * 0.35, hair)
    _face(pen, scene.expression, hx, hy, [hx - r * 0.38, hx + r * 0.38])


def render(character: Character, scene: Scene, size: int = 64, seed: int = 0, supersample: int = 4) -> Image.Image:
    """One picture of ``character`` in ``scene``; the same arguments always give the same pixels."""
    rng = random.Random(seed)
    canvas = size * supersample
    image = Image.new("RGB", (canvas, canvas), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    jitter = 0.0 if scene.pose == "portrait" else 0.035
    pen = _Pen(draw, canvas, dx=rng.uniform(-jitter, jitter), dy=rng.uniform(-jitter / 2, jitter / 2))
    _background(pen, scene.background, rng)
    pen.zoom = rng.uniform(0.94, 1.04)
    pen.centre = (0.5, 0.52)
    if scene.pose == "portrait":
        pen.zoom, pen.centre = 1.5, (0.5, 0.28)
    body = _body(scene.pose)
    hx, hy = body.head
    if body.shadow:
        pen.ellipse(0.5, 0.92, 0.16, 0.025, _darker(BACKGROUNDS[scene.background], 0.8), outline=False)
    _hair_back(pen, character, hx, hy, body.facing)
    _legs(pen, body, character)
    _torso(pen, body, character)
    _arms(pen, body, character)
    _head(pen, character, scene, hx, hy, body.facing)
    _accessory(pen, character, hx, hy, body.facing)
    return image.resize((size, size), Image.Resampling.LANCZOS)
