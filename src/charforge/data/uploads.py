"""Files that arrive through the web UI, checked before they are stored in a workspace.

A browser sends a name and bytes, and both are untrusted: the name may climb out of the folder
(``../../x.png``), be absolute, hold a NUL byte or be a name Windows reserves (``CON.png``); the bytes may not
be the picture the extension claims, may be huge, or may be a small file that decodes to billions of pixels
(a decompression bomb). So the type is read from the content (what Pillow identifies, not the suffix), the size
is capped, Pillow's bomb guard is an error rather than a warning, and the file is stored under a safe name of
our making in ``uploads/`` inside the workspace. ``prepare`` then treats it as any other input.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .. import atomic
from ..workspace import IMAGE_SUFFIXES, Workspace

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # a 50 MB drawing is already a 16k-pixel PNG
MAX_PIXELS = 16384 * 16384  # also Pillow's bomb limit is enforced at this size, not only warned about
# Pillow's format name -> the suffix the stored file gets (the content decides, not the name it came with)
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif", "MPO": ".jpg"}
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
UPLOADS_DIR = "uploads"


class UploadRefused(ValueError):
    """An uploaded file that is not stored; ``reason`` says why in a few words."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass
class UploadResult:
    stored: list[Path]
    refused: list[UploadRefused]


def safe_name(name: str) -> str:
    """A file name of letters, digits, ``._-`` only: no folder part, no NUL, no reserved or hidden name.

    The last path component of ``name`` is kept (browsers may send a path), so ``../../x.png`` becomes ``x.png``."""
    if "\x00" in name:
        raise UploadRefused(name.replace("\x00", "\\0"), "the name holds a NUL byte")
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = _UNSAFE.sub("_", base).strip("._") or "upload"
    stem, dot, suffix = base.partition(".")
    if stem.lower() in _RESERVED:
        stem = f"{stem}_"
    return (stem + dot + suffix)[:120]


def check_upload(path: Path, name: str, *, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """The suffix the file's content calls for; raises :class:`UploadRefused` with the reason otherwise."""
    size = path.stat().st_size
    if size > max_bytes:
        raise UploadRefused(name, f"too large ({size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB)")
    if size == 0:
        raise UploadRefused(name, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                kind = image.format or ""
                if image.width * image.height > MAX_PIXELS:
                    size_text = f"{image.width}x{image.height}"
                    raise UploadRefused(name, f"{size_text} pixels is more than a drawing needs (decompression bomb?)")
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRefused(name, f"refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UploadRefused(name, "not an image (its content is no picture format, whatever its name says)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRefused(name, f"corrupt or truncated image ({exc})") from exc
    if kind not in FORMATS:
        raise UploadRefused(name, f"{kind or 'this'} format is not taken; upload PNG, JPEG, WebP, GIF, BMP or TIFF")
    return FORMATS[kind]


def store_uploads(workspace: Workspace, files: list[tuple[Path, str]], *, max_bytes: int = MAX_UPLOAD_BYTES) -> UploadResult:
    """Check each ``(temporary file, name the browser gave)`` and copy the good ones to ``uploads/`` under safe,
    unique names; nothing is written outside the workspace."""
    folder = (workspace.root / UPLOADS_DIR).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    stored, refused = [], []
    for source, name in files:
        try:
            suffix = check_upload(Path(source), name, max_bytes=max_bytes)
            stem = Path(safe_name(name)).stem or "upload"
        except UploadRefused as problem:
            refused.append(problem)
            continue
        target = folder / f"{stem}{suffix}"
        n = 1
        while target.exists():
            n += 1
            target = folder / f"{stem}-{n}{suffix}"
        if target.resolve().parent != folder or target.suffix not in IMAGE_SUFFIXES:  # safe_name makes this impossible
            refused.append(UploadRefused(name, "unsafe file name"))
            continue
        with atomic.atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        stored.append(target)
    return UploadResult(stored, refused)
