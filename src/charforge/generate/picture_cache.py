"""The one content-keyed picture cache: a picture drawn once for the same model, weights and parameters is read back
instead of drawn again (evaluation's pictures per checkpoint, the comic's panels).

A picture is stored under a name (``<point>/<prompt>-s<seed>.png``, ``<key>.png``) with its generation parameters in
the PNG, and the content key it was drawn for in its folder's ``index.json``: a picture whose key changed (another
model, new weights, other parameters) is not returned, and drawing it again replaces it. Everything is written
atomically (temp + rename), so an interrupted run keeps every picture it finished.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from .. import atomic
from .metadata import GenerationParams, save_png

INDEX = "index.json"


class PictureCache:
    """Pictures in ``folder`` by name, each valid for the content key it was drawn with (this cache is the folder's
    only writer, so each folder's index is read from disk once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._indexes: dict[Path, dict[str, str]] = {}

    def path(self, name: str) -> Path:
        return self.folder / name

    def _index(self, folder: Path) -> dict[str, str]:
        if folder not in self._indexes:
            path = folder / INDEX
            try:
                self._indexes[folder] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            except ValueError:
                self._indexes[folder] = {}  # a damaged index: its pictures are drawn again
        return self._indexes[folder]

    def get(self, name: str, key: str) -> Path | None:
        """The picture stored as ``name`` if it was drawn for ``key``, else None."""
        path = self.path(name)
        return path if path.is_file() and self._index(path.parent).get(path.name) == key else None

    def open(self, name: str, key: str) -> Image.Image | None:
        """:meth:`get`'s picture as RGB; None also when the file cannot be read (a damaged entry is drawn again)."""
        path = self.get(name, key)
        if path is None:
            return None
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError:
            return None

    def put(self, name: str, key: str, image: Image.Image, params: GenerationParams, record: dict | None = None) -> Path:
        """Store ``image`` as ``name`` for ``key`` (``record``, if given, beside it as ``<name>.json``)."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(image, path, params)
        if record is not None:
            atomic.write_text(path.with_suffix(".json"), json.dumps({"key": key, **record}, indent=2))
        index = self._index(path.parent)
        index[path.name] = key
        atomic.write_text(path.parent / INDEX, json.dumps(index, indent=1, sort_keys=True))
        return path
