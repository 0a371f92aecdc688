"""Pose skeletons for ControlNet: OpenPose images as they are, or keypoints in JSON drawn the way OpenPose draws them.

OpenPose ControlNets (``lllyasviel/control_v11p_sd15_openpose``, ``thibaud/controlnet-openpose-sdxl-1.0``, ...) were
trained on skeletons drawn by ``controlnet_aux``'s ``draw_bodypose``: 18 COCO keypoints, each limb a soft ellipse in
its own colour on black, each joint a dot. A skeleton drawn in other colours or widths is followed less well, so
keypoints are drawn with the same limb order, colours and widths.

Two JSON forms are read: OpenPose's own (``{"people": [{"pose_keypoints_2d": [x, y, c, ...]}], "canvas_width": W,
"canvas_height": H}``, which pose editors export) and a named one (``{"width": W, "height": H, "keypoints":
{"nose": [x, y], "neck": [x, y], ...}}``). Coordinates at or below 1 are read as fractions of the canvas.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image, ImageDraw

from ..errors import CharforgeError

KEYPOINTS = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip
# controlnet_aux's limbSeq (0-based) and colours, in its order: the 18th and 19th pairs are not drawn there either.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
STICK_WIDTH = 4  # at 512 px, as controlnet_aux draws; scaled with the canvas

Person = list[tuple[float, float] | None]  # one entry per KEYPOINTS name, None where not seen


def read_keypoints(path: Path) -> tuple[tuple[int, int], list[Person]]:
    """The canvas size and the people in a keypoint JSON file (either form), in pixels."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CharforgeError(f"--pose {path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise CharforgeError(f"--pose {path}: expected a JSON object with 'people' or 'keypoints'")
    if "people" in data:
        size = (int(data.get("canvas_width", 512)), int(data.get("canvas_height", 512)))
        people = [_openpose_person(path, p, n) for n, p in enumerate(data["people"])]
    elif "keypoints" in data:
        size = (int(data.get("width", 512)), int(data.get("height", 512)))
        people = [_named_person(path, data["keypoints"])]
    else:
        raise CharforgeError(f"--pose {path}: expected a JSON object with 'people' (OpenPose) or 'keypoints' (named)")
    if not any(any(p) for p in people):
        raise CharforgeError(f"--pose {path}: no keypoints in it")
    return size, [_to_pixels(p, size) for p in people]


def _openpose_person(path: Path, person: dict, n: int) -> Person:
    values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
    if not isinstance(values, list) or len(values) < 3 * len(KEYPOINTS):
        raise CharforgeError(f"--pose {path}: people[{n}].pose_keypoints_2d must hold 18 x (x, y, confidence) numbers")
    out: Person = []
    for k in range(len(KEYPOINTS)):
        x, y, confidence = values[3 * k : 3 * k + 3]
        out.append((float(x), float(y)) if confidence and confidence > 0 else None)
    return out


def _named_person(path: Path, keypoints: dict) -> Person:
    unknown = sorted(set(keypoints) - set(KEYPOINTS))
    if unknown:
        raise CharforgeError(f"--pose {path}: unknown keypoint {unknown[0]!r} (known: {', '.join(KEYPOINTS)})")
    out: Person = []
    for name in KEYPOINTS:
        point = keypoints.get(name)
        if point is None:
            out.append(None)
        elif isinstance(point, list) and len(point) >= 2 and all(isinstance(v, int | float) for v in point[:2]):
            out.append((float(point[0]), float(point[1])))
        else:
            raise CharforgeError(f"--pose {path}: keypoint {name!r} must be [x, y] (got {point!r})")
    return out


def _to_pixels(person: Person, size: tuple[int, int]) -> Person:
    seen = [p for p in person if p is not None]
    if seen and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in seen):
        return [None if p is None else (p[0] * size[0], p[1] * size[1]) for p in person]
    return person


def draw_skeleton(size: tuple[int, int], people: list[Person]) -> Image.Image:
    """An OpenPose skeleton picture: limbs as 60 % ellipses in their colours over black, then the joints."""
    width, height = size
    scale = max(width, height) / 512
    canvas = Image.new("RGB", size, (0, 0, 0))
    for person in people:
        for (a, b), colour in zip(LIMBS, COLOURS, strict=False):
            if person[a] is None or person[b] is None:
                continue
            layer = Image.new("RGB", size, (0, 0, 0))
            ImageDraw.Draw(layer).polygon(_limb_polygon(person[a], person[b], STICK_WIDTH * scale), fill=colour)
            mask = Image.new("L", size, 0)
            ImageDraw.Draw(mask).polygon(_limb_polygon(person[a], person[b], STICK_WIDTH * scale), fill=int(255 * 0.6))
            canvas = Image.composite(layer, canvas, mask)
        pen = ImageDraw.Draw(canvas)
        radius = 4 * scale
        for point, colour in zip(person, COLOURS, strict=True):
            if point is not None:
                x, y = point
                pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    return canvas


def _limb_polygon(a: tuple[float, float], b: tuple[float, float], half_width: float) -> list[tuple[float, float]]:
    """The ellipse from ``a`` to ``b`` (OpenCV's ``ellipse2Poly`` as controlnet_aux calls it), as a polygon."""
    (x1, y1), (x2, y2) = a, b
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    length = math.hypot(x2 - x1, y2 - y1) / 2
    angle = math.atan2(y2 - y1, x2 - x1)
    cos, sin = math.cos(angle), math.sin(angle)
    points = []
    for k in range(36):
        t = 2 * math.pi * k / 36
        ex, ey = length * math.cos(t), half_width * math.sin(t)
        points.append((cx + ex * cos - ey * sin, cy + ex * sin + ey * cos))
    return points


def load_pose(path: str | Path, size: tuple[int, int] | None = None) -> Image.Image:
    """The control picture for ``--pose``: a skeleton picture as it is, or a keypoint JSON file drawn; resized to
    ``size`` (the picture being drawn) when given."""
    from .masks import open_picture

    path = Path(path)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise CharforgeError(f"--pose {path}: file not found")
        canvas, people = read_keypoints(path)
        picture = draw_skeleton(canvas, people)
    else:
        picture = open_picture(path, "--pose")
    if size is not None and picture.size != tuple(size):
        picture = picture.resize(size, Image.Resampling.BILINEAR)
    return picture
