"""Content digests: caches key on what a file holds, not on its name or time (a retrained LoRA at the
same path must not be mistaken for the old one)."""

from __future__ import annotations

import hashlib
from pathlib import Path

FILE_HASH_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(FILE_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def folder_digest(path: Path) -> str:
    """A LoRA may be a folder (diffusers ``final/``): hash its weight files."""
    if path.is_file():
        return file_digest(path)
    parts = [f"{p.relative_to(path)}:{file_digest(p)}" for p in sorted(path.rglob("*.safetensors"))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
