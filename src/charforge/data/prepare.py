"""Copy a user's images into a workspace, normalised enough to train on.

Originals are copied untouched to ``originals/``; normalised square PNGs go to ``images/``. Bad files
are reported one per line with their reason and skipped (or stop the run with ``strict``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic
from ..errors import CharforgeError
from ..workspace import Workspace
from .images import ImageProblem, center_crop_resize, load_image


@dataclass
class PrepareReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[ImageProblem] = field(default_factory=list)


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their non-hidden files (sorted)."""
    files: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
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


def prepare_images(
    workspace: Workspace, inputs: Iterable[str | Path], *, resolution: int = 1024, strict: bool = False
) -> PrepareReport:
    """Validate and normalise ``inputs`` into ``workspace``; never upscales (training resizes later)."""
    report = PrepareReport()
    for path in expand_inputs(inputs):
        try:
            image = load_image(path)
        except ImageProblem as problem:
            if strict:
                raise CharforgeError(str(problem)) from problem
            report.skipped.append(problem)
            continue
        side = min(resolution, min(image.size))
        image = center_crop_resize(image, side)
        target = _unique(workspace.images_dir, path.stem, ".png")
        with atomic.atomic_path(target) as tmp:
            image.save(tmp, format="PNG")
        original = _unique(workspace.originals_dir, path.stem, path.suffix)
        with atomic.atomic_path(original) as tmp:
            shutil.copyfile(path, tmp)
        report.written.append(target)
    if not report.written:
        reasons = "; ".join(str(p) for p in report.skipped[:3])
        raise CharforgeError(f"no usable images among the inputs ({reasons})")
    return report


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    candidate = folder / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate
