"""Lettering fonts: the user's file, else Comic Neue (SIL Open Font License), else Pillow's own font.

Comic Neue is installed by the system package manager (Debian/Ubuntu ``fonts-comic-neue``,
Homebrew ``font-comic-neue``), never downloaded by us. Without it the page still renders, in
Pillow's bundled sans-serif, and the page's sidecar says which font was used.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from ..errors import CharforgeError

COMIC_NEUE = ("ComicNeue-Bold.otf", "ComicNeue-Bold.ttf", "ComicNeue_Bold.otf")
FONT_DIRS = [
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
    Path.home() / ".fonts",
    Path.home() / "Library/Fonts",
    Path("/Library/Fonts"),
    Path(sys.prefix) / "share/fonts",
]
INSTALL_HINT = "install Comic Neue (Debian/Ubuntu: apt install fonts-comic-neue) or set lettering.font"


@lru_cache(maxsize=1)
def find_comic_neue() -> Path | None:
    for folder in FONT_DIRS:
        if not folder.is_dir():
            continue
        for name in COMIC_NEUE:
            found = next(folder.rglob(name), None)
            if found is not None:
                return found
    return None


class FontSource:
    """A font family at any size (sizes are cached: lettering tries many while fitting)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._sizes: dict[int, ImageFont.FreeTypeFont] = {}

    @property
    def label(self) -> str:
        return self.path.name if self.path else "Pillow default (Aileron); " + INSTALL_HINT

    def at(self, size: int) -> ImageFont.FreeTypeFont:
        if size not in self._sizes:
            if self.path is None:
                self._sizes[size] = ImageFont.load_default(size)
            else:
                self._sizes[size] = ImageFont.truetype(str(self.path), size)
        return self._sizes[size]


def font_source(path: Path | None = None) -> FontSource:
    if path is not None:
        if not path.is_file():
            raise CharforgeError(f"lettering.font {path}: no such font file")
        try:
            ImageFont.truetype(str(path), 12)
        except OSError as exc:
            raise CharforgeError(f"lettering.font {path}: not a font Pillow can read ({exc})") from exc
        return FontSource(path)
    return FontSource(find_comic_neue())
