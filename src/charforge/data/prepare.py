"""Copy a user's images into a workspace, normalised to train on, with a reason for every problem.

Originals are copied untouched to ``originals/``; normalised PNGs go to ``images/``: sRGB, transparency
on a chosen background, EXIF orientation applied, the character framed without being cut off (square
or the nearest aspect-ratio bucket), resized to the resolution. Files that cannot be used are skipped
with their reason; usable but doubtful ones (blurred, almost blank, duplicates, upscaled) are flagged.
"""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image, ImageColor, ImageEnhance, ImageOps
from pydantic import Field, field_validator

from .. import atomic
from ..errors import CharforgeError
from ..options import Options, cli
from ..workspace import Workspace
from .buckets import make_buckets, nearest_bucket
from .images import ImageProblem, load_image
from .quality import BLANK_SHARE, BLUR_THRESHOLD, dhash, find_duplicates, sharpness
from .subject import find_subject, frame_subject

REPORT_FILE = "prepare-report.json"
BLANK_REASON = "almost blank: no subject found against the background"


@dataclass
class FileReport:
    source: str
    # "ok", "flagged" (kept, look at it), "already there" (the same picture was prepared before) or "skipped"
    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    output: str | None = None
    size: tuple[int, int] | None = None  # original pixels
    subject_share: float | None = None

    def flag(self, reason: str) -> None:
        self.reasons.append(reason)
        if self.status == "ok":
            self.status = "flagged"


@dataclass
class PrepareReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def written(self) -> list[Path]:
        return [Path(f.output) for f in self.files if f.output]

    @property
    def skipped(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "skipped"]

    @property
    def flagged(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "flagged"]


FLIP_HELP = (
    "Also add mirrored copies. Off by default: a character with a side-specific detail (a horn on the left, "
    "a badge) would learn both sides."
)
Colour = tuple[int, int, int]


class PrepareOptions(Options):
    """What ``charforge prepare`` does to each drawing; the CLI's flags are these fields."""

    resolution: int = Field(1024, description="Output size in pixels (square), or the bucket area with --buckets.")
    background: Colour = Field((255, 255, 255), description="Colour transparency is flattened onto: white, black or #rrggbb.")
    crop: Literal["subject", "center"] = Field(
        "subject", description="subject: frame the character on a plain background without cutting it; center: centre crop."
    )
    buckets: bool = Field(
        False, description="Keep each drawing's aspect ratio: crop to the nearest aspect-ratio bucket, not a square."
    )
    flip: bool = Field(False, description=FLIP_HELP)
    color_jitter: float = Field(
        0.0, ge=0, description="Also add a copy with saturation/brightness jittered by up to this fraction (0 = off)."
    )
    zoom_out: int = Field(
        0, ge=0, description="Also add this many copies of each with the character shrunk to 70-90% and moved off-centre."
    )
    backgrounds: int = Field(
        0,
        ge=0,
        description="Also add this many copies of each on other plain or textured backgrounds, captioned with them "
        "(a character on a flat background only; so the background is not learnt as part of the character).",
    )
    background_choices: tuple[tuple[str, Colour], ...] | None = Field(
        None,
        description="(words, colour) pairs the background copies draw from (default: BACKGROUNDS).",
        json_schema_extra=cli(hidden=True),
    )
    strict: bool = Field(False, description="Stop at the first unusable file instead of skipping it.")
    keep_flagged: bool = Field(
        False, description="Also keep almost-blank images for training (skipped by default: they teach nothing)."
    )
    seed: int = Field(0, description="Seed of the augmented copies (jitter, zoom, backgrounds).")

    @field_validator("background", mode="before")
    @classmethod
    def _colour(cls, value):
        return parse_colour(value) if isinstance(value, str) else value

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: int) -> int:
        if value < 64 or value % 8:
            raise ValueError("must be a multiple of 8 and at least 64")
        return value


def parse_colour(text: str) -> Colour:
    """``white``, ``black``, ``#rrggbb`` or any CSS colour name, as RGB."""
    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a colour; use a name such as white or #rrggbb") from exc


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their non-hidden files, globs expanded (all sorted)."""
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if any(ch in str(raw) for ch in "*?[") and not path.exists():
            matches = sorted(Path(p) for p in glob.glob(str(raw), recursive=True) if Path(p).is_file())
            if not matches:
                raise CharforgeError(f"{raw}: the pattern matches no file")
            files.extend(matches)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not found:
                raise CharforgeError(f"{path}: folder is empty; put the character's drawings in it")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CharforgeError(f"{path}: no such file or folder")
    if not files:
        raise CharforgeError("no input images given")
    return files


def prepare_images(workspace: Workspace, inputs: Iterable[str | Path], options: PrepareOptions | None = None) -> PrepareReport:
    """Validate and normalise ``inputs`` into ``workspace``; writes ``prepare-report.json`` beside them."""
    options = options or PrepareOptions()
    report = PrepareReport()
    hashes: dict[str, int] = {}
    copies: dict[str, str] = {}  # augmented copy -> its source: `caption` gives a copy its source's caption
    backgrounds: dict[str, str] = {}  # copy on a new ground -> the words its caption says instead of the source's ground
    buckets = make_buckets(options.resolution) if options.buckets else None
    existing = _prepared_pictures(workspace.images_dir)
    before = dict(existing)  # an augmented copy is skipped only if an earlier prepare made it (idempotence)
    for path in expand_inputs(inputs):
        entry = FileReport(source=str(path))
        report.files.append(entry)
        try:
            image = load_image(path, background=options.background)
        except ImageProblem as problem:
            if options.strict:
                raise CharforgeError(str(problem)) from problem
            entry.status, entry.reasons = "skipped", [problem.reason]
            continue
        entry.size = image.size
        framed = _frame(image, entry, options, buckets)
        if BLANK_REASON in entry.reasons and not options.keep_flagged:
            entry.status = "skipped"
            entry.reasons.append("not used for training (--keep-flagged keeps it)")
            continue
        key = _content_key(framed)
        target = existing.get(key)
        repeated = target is not None and str(target) in hashes  # the same picture given twice in this call
        if target is not None:  # prepared before: the same picture is not added twice
            entry.status = "already there"
            entry.reasons.insert(0, f"already there as {target.name}")
        else:
            target = existing[key] = _store(workspace, framed, path)
        entry.output = str(target)
        hashes[str(target)] = dhash(framed)
        if repeated:  # its copies were made with its first occurrence
            continue
        for stem, words in _write_copies(workspace, framed, target, options, before, existing):
            copies[stem] = target.stem
            if words:
                backgrounds[stem] = words
    _flag_duplicates(report, hashes)
    if copies:
        workspace.record_copies(copies, backgrounds)
    if not report.written:
        reasons = "; ".join(f"{Path(f.source).name}: {', '.join(f.reasons)}" for f in report.skipped[:3])
        raise CharforgeError(f"no usable images among the inputs ({reasons})")
    atomic.write_text(workspace.root / REPORT_FILE, json.dumps([asdict(f) for f in report.files], indent=1))
    return report


def _store(workspace: Workspace, framed: Image.Image, path: Path) -> Path:
    """``framed`` written as a new training picture, with its original beside the others; its path."""
    target = _unique(workspace.images_dir, path.stem, ".png")
    with atomic.atomic_path(target) as tmp:
        framed.save(tmp, format="PNG")
    # the original is named after its normalised image, so stats can pair them even when input stems clash
    with atomic.atomic_path(_unique(workspace.originals_dir, target.stem, path.suffix)) as tmp:
        shutil.copyfile(path, tmp)
    return target


def _write_copies(
    workspace: Workspace, framed: Image.Image, target: Path, options: PrepareOptions, before: dict, existing: dict
) -> list[tuple[str, str | None]]:
    """The augmented copies of ``framed`` that no earlier prepare made, written beside ``target`` (and added to
    ``existing``): each copy's name, and the words its caption says for a new background (None: same ground)."""
    made = []
    for suffix, extra, *words in _augmentations(framed, options):
        extra_key = _content_key(extra)
        if extra_key in before:
            continue
        copy = _unique(workspace.images_dir, f"{target.stem}-{suffix}", ".png")
        with atomic.atomic_path(copy) as tmp:
            extra.save(tmp, format="PNG")
        existing[extra_key] = copy
        made.append((copy.stem, words[0] if words else None))
    return made


def _frame(image: Image.Image, entry: FileReport, options: PrepareOptions, buckets) -> Image.Image:
    subject = find_subject(image)
    entry.subject_share = round(subject.area_share, 4)
    if subject.area_share < BLANK_SHARE:
        entry.flag(BLANK_REASON)
    if sharpness(image) < BLUR_THRESHOLD:
        entry.flag("blurred: edges are soft; a sharper drawing trains better")
    if options.crop == "center":
        subject = type(subject)(subject.bbox, subject.background, False, subject.area_share)
    if buckets:
        x0, y0, x1, y1 = subject.bbox
        aspect = (x1 - x0) / max(1, y1 - y0) if subject.flat_background else image.width / image.height
        size = nearest_bucket(aspect, buckets)
    else:
        size = (options.resolution, options.resolution)
    framed = frame_subject(image, subject, aspect=size[0] / size[1])
    if framed.width < size[0] or framed.height < size[1]:
        entry.flag(f"upscaled from {framed.width}x{framed.height} to {size[0]}x{size[1]}; a larger drawing keeps more detail")
    return framed.resize(size, Image.Resampling.LANCZOS)


def _augmentations(image: Image.Image, options: PrepareOptions) -> list[tuple]:
    """``(suffix, picture)``, or ``(suffix, picture, background words)`` for a copy on a new background."""
    extras = []
    if options.flip:
        extras.append(("flip", ImageOps.mirror(image)))
    if options.color_jitter:
        import random

        rng = random.Random(options.seed)
        jittered = ImageEnhance.Color(image).enhance(1 + rng.uniform(-1, 1) * options.color_jitter)
        jittered = ImageEnhance.Brightness(jittered).enhance(1 + rng.uniform(-1, 1) * options.color_jitter / 2)
        extras.append(("jitter", jittered))
    if options.zoom_out:
        extras += zoomed_out_copies(image, options.zoom_out, seed=options.seed)
    if options.backgrounds:
        extras += background_copies(image, options.backgrounds, options.background_choices or BACKGROUNDS, seed=options.seed)
    return extras


# Grounds a character is shown on by `prepare --backgrounds N`: plain colours and soft textures, light and dark, warm
# and cool, so no single ground is what the identifier learns. (words for the caption, base colour)
BACKGROUNDS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("light blue", (150, 200, 245)),
    ("dark green", (40, 100, 70)),
    ("pink", (245, 190, 210)),
    ("grey textured", (125, 125, 130)),
    ("navy blue", (30, 40, 90)),
    ("yellow textured", (240, 215, 110)),
    ("orange", (235, 140, 60)),
    ("purple textured", (110, 70, 150)),
)


def background_copies(
    image: Image.Image, count: int, choices: tuple[tuple[str, tuple[int, int, int]], ...], seed: int = 0
) -> list[tuple[str, Image.Image, str]]:
    """``count`` copies of a character on a flat background, composited onto other grounds (each picture its own
    draw of ``choices``, reproducibly); ``(suffix, picture, words)`` with the words its caption names.

    A handful of references all on white teach white as part of the character: asked for "blue sky background",
    the model drew a blue blob. Shown on other grounds, with captions that name them, the identifier is left with the
    character alone. A "textured" choice is its colour with soft noise. A picture whose background is not flat has
    no trustworthy outline and gets no copies.
    """
    import random
    import zlib

    from PIL import ImageFilter

    from .subject import silhouette

    shape = silhouette(image)
    if shape is None or not count:
        return []
    rng = random.Random(seed * 1_000_003 + zlib.crc32(image.tobytes()))
    picks = rng.sample(list(choices), min(count, len(choices)))
    mask = Image.fromarray((shape * 255).astype("uint8"))
    copies = []
    for k, (words, colour) in enumerate(picks):
        ground = Image.new("RGB", image.size, colour)
        if "textured" in words:
            noise = Image.effect_noise(image.size, 40).filter(ImageFilter.GaussianBlur(max(1, image.width // 64)))
            ground = Image.composite(Image.new("RGB", image.size, tuple(min(255, c + 40) for c in colour)), ground, noise)
        ground.paste(image, mask=mask)
        copies.append((f"bg{k}", ground, words))
    return copies


def zoomed_out_copies(image: Image.Image, count: int, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """``count`` copies with the picture shrunk to 70-90 % and placed at a random spot on its background colour.

    A handful of references all framed the same way teach the character at one size and place; in a new pose
    (sitting, jumping) its head is elsewhere and smaller. Like kohya's random crop and scale augmentation, these
    copies show it at other sizes and positions. The border is filled with the picture's own background colour
    (the median of its border pixels), so the copy still looks like a drawing on a plain ground.
    """
    import random
    import zlib

    from .subject import find_subject

    rng = random.Random(seed * 1_000_003 + zlib.crc32(image.tobytes()))  # each picture its own spots, reproducibly
    background = find_subject(image).background
    copies = []
    for k in range(count):
        scale = rng.uniform(0.7, 0.9)
        w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        canvas = Image.new("RGB", image.size, background)
        spot = (rng.randint(0, image.width - w), rng.randint(0, image.height - h))
        canvas.paste(image.resize((w, h), Image.Resampling.LANCZOS), spot)
        copies.append((f"zoom{k}", canvas))
    return copies


def _flag_duplicates(report: PrepareReport, hashes: dict[str, int]) -> None:
    by_output = {f.output: f for f in report.files if f.output}
    for first, later, distance in find_duplicates(hashes):
        kind = "duplicate" if distance == 0 else f"near-duplicate ({distance}/64 hash bits differ)"
        by_output[later].flag(f"{kind} of {Path(by_output[first].source).name}")


def _content_key(image: Image.Image) -> str:
    """The pixels' identity: prepare run again on the same drawings writes the same pixels, so it finds them."""
    rgb = image.convert("RGB")
    return hashlib.sha256(f"{rgb.size}".encode() + rgb.tobytes()).hexdigest()


def _prepared_pictures(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            out.setdefault(_content_key(image), path)
    return out


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    candidate = folder / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate
