"""A character's folder and the files in it (layout in DESIGN.md, "A character workspace")."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import atomic
from .errors import CharforgeError
from .run import Run

CHARACTER_FILE = "character.yaml"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}  # what counts as a picture
_TOKEN_RE = re.compile(r"^\S+$")


def validate_token(token: str, *, what: str = "token") -> str:
    """A DreamBooth identifier must be one non-empty word, or the tokenizer splits it unpredictably."""
    if not token or not token.strip():
        raise CharforgeError(f"--{what} is empty; give a unique word such as UnicornGirl or sks")
    if not _TOKEN_RE.match(token):
        raise CharforgeError(f"--{what} {token!r} contains spaces; use one word such as {token.split()[0]!r}")
    return token


@dataclass(frozen=True)
class Character:
    token: str
    class_word: str
    notes: str = ""
    world: str = ""  # a mini-world held-out character's name: its pictures can be read by the judge


class Workspace:
    """One character: its images, captions, runs and outputs, all below ``root``."""

    def __init__(self, root: Path, character: Character) -> None:
        self.root = root
        self.character = character

    # -- creation and opening -------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, *, token: str, class_word: str, notes: str = "", world: str = "") -> Workspace:
        root = Path(root)
        validate_token(token)
        validate_token(class_word, what="class-word")
        if (root / CHARACTER_FILE).exists():
            raise CharforgeError(f"{root / CHARACTER_FILE} already exists; this workspace is initialised")
        character = Character(token=token, class_word=class_word, notes=notes, world=world)
        root.mkdir(parents=True, exist_ok=True)
        atomic.write_text(root / CHARACTER_FILE, yaml.safe_dump(character.__dict__, sort_keys=False))
        ws = cls(root, character)
        for folder in (ws.images_dir, ws.originals_dir, ws.captions_dir, ws.runs_dir, ws.outputs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return ws

    @classmethod
    def open(cls, root: str | Path) -> Workspace:
        root = Path(root)
        path = root / CHARACTER_FILE
        if not path.is_file():
            raise CharforgeError(f"{root}: not a charforge workspace (no {CHARACTER_FILE}); run `charforge init {root}`")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            character = Character(
                token=data["token"], class_word=data["class_word"], notes=data.get("notes", ""), world=data.get("world", "")
            )
        except (yaml.YAMLError, KeyError, TypeError) as exc:
            raise CharforgeError(f"{path}: malformed ({exc}); it needs `token:` and `class_word:`") from exc
        validate_token(character.token)
        return cls(root, character)

    # -- folders --------------------------------------------------------------------------------
    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def originals_dir(self) -> Path:
        return self.root / "originals"

    @property
    def captions_dir(self) -> Path:
        return self.root / "captions"

    @property
    def class_images_dir(self) -> Path:
        return self.root / "class-images"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    def training_images(self) -> list[Path]:
        images = sorted(p for p in self.images_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise CharforgeError(f"{self.images_dir}: no training images; run `charforge prepare {self.root} IMAGES...`")
        return images

    def outputs(self, limit: int = 200) -> list[Path]:
        """Generated pictures in ``outputs/``, newest first (contact sheets left out)."""
        found = [p for p in self.outputs_dir.glob("*/*.png") if p.name != "contact-sheet.png"]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:limit]

    # -- augmented copies -------------------------------------------------------------------------
    @property
    def copies_file(self) -> Path:
        return self.root / "copies.json"

    def _copies(self) -> dict[str, dict[str, str]]:
        """copy stem -> {"source": stem, and "background": words for a copy on a new background}; only pairs whose
        both images still exist count, so deleting a picture by hand is enough to drop it."""
        if not self.copies_file.is_file():
            return {}
        try:
            pairs = json.loads(self.copies_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CharforgeError(f"{self.copies_file}: malformed ({exc}); delete it and run `charforge prepare` again") from exc
        present = {p.stem for p in self.images_dir.glob("*")} if self.images_dir.is_dir() else set()
        records = {copy: value if isinstance(value, dict) else {"source": value} for copy, value in pairs.items()}
        return {copy: r for copy, r in records.items() if copy in present and r.get("source") in present}

    def copy_sources(self) -> dict[str, str]:
        """Training-image stem -> the stem of the prepared image it is an augmented copy of (flip, jitter, zoom-out,
        background)."""
        return {copy: record["source"] for copy, record in self._copies().items()}

    def copy_backgrounds(self) -> dict[str, str]:
        """Copy stem -> the background it was composited onto (``prepare --backgrounds``), for its caption."""
        return {copy: record["background"] for copy, record in self._copies().items() if record.get("background")}

    def record_copies(self, pairs: dict[str, str], backgrounds: dict[str, str] | None = None) -> None:
        """Add ``pairs`` (copy stem -> source stem; ``backgrounds``: copy stem -> its new background's words) to the
        record kept across `prepare` runs."""
        merged, backgrounds = self._copies(), backgrounds or {}
        for copy, source in pairs.items():
            merged[copy] = {"source": source, **({"background": backgrounds[copy]} if copy in backgrounds else {})}
        atomic.write_text(self.copies_file, json.dumps(merged, indent=1, sort_keys=True))

    def caption_for(self, image: Path) -> str | None:
        path = self.captions_dir / f"{image.stem}.txt"
        return path.read_text(encoding="utf-8").strip() if path.is_file() else None

    def write_caption(self, image: Path, text: str) -> Path:
        """A caption written by hand (the web UI's editor): ``caption`` keeps it, as it keeps any hand edit."""
        path = self.captions_dir / f"{Path(image).stem}.txt"
        atomic.write_text(path, text.strip() + "\n")
        return path

    # -- runs -----------------------------------------------------------------------------------
    def run_names(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def next_run_name(self) -> str:
        taken = set(self.run_names())
        n = 1
        while f"run-{n:03d}" in taken:
            n += 1
        return f"run-{n:03d}"

    def run(self, name: str) -> Run:
        """An existing run; ``latest`` is the one trained (started or resumed) last. Evaluating, rating or
        promoting an older run does not make it the latest."""
        names = self.run_names()
        if name == "latest":
            if not names:
                raise CharforgeError(f"{self.runs_dir}: no runs yet; run `charforge train {self.root}` first")
            return max((Run(self.runs_dir / n) for n in names), key=Run.trained_at)
        path = self.runs_dir / name
        if not path.is_dir():
            known = ", ".join(names) or "none"
            raise CharforgeError(f"run {name!r} not found in {self.runs_dir} (runs: {known})")
        return Run(path)

    def run_dir(self, name: str) -> Path:
        return self.run(name).folder
