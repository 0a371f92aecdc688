"""The file hashes other programs show and match on, computed their way.

* A1111's ``Model hash`` (in every picture's parameters): the first 10 hex digits of the whole file's sha256.
* kohya's ``sshs_model_hash`` and A1111's ``Lora hashes``: the sha256 of a ``.safetensors`` file's tensor data, the
  header left out (``addnet_hash_safetensors`` in both), so that editing the metadata keeps the hash. A1111 shows
  its first 12 digits.

Hashes of large single files are kept in memory per (path, size, mtime): a base model is hashed once per process.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

_BLOCK = 1 << 20
_cache: dict[tuple[str, int, int, str], str] = {}

MODEL_HASH_DIGITS = 10  # A1111's CheckpointInfo.shorthash
LORA_HASH_DIGITS = 12  # A1111's NetworkOnDisk.shorthash


def _digest(path: Path, skip_header: bool) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, "data" if skip_header else "file")
    if key not in _cache:
        sha = hashlib.sha256()
        with path.open("rb") as f:
            if skip_header:
                (length,) = struct.unpack("<Q", f.read(8))
                f.seek(8 + length)
            for block in iter(lambda: f.read(_BLOCK), b""):
                sha.update(block)
        _cache[key] = sha.hexdigest()
    return _cache[key]


def file_sha256(path: Path) -> str:
    return _digest(Path(path), skip_header=False)


def tensor_data_sha256(path: Path) -> str:
    """kohya's / A1111's "addnet" hash of a ``.safetensors`` file."""
    return _digest(Path(path), skip_header=True)


def tensor_bytes_sha256(data: bytes) -> str:
    """The same hash of a file still in memory (``safetensors.torch.save``), before its metadata is final."""
    (length,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + length :]).hexdigest()


def model_hash(path: Path) -> str:
    return file_sha256(path)[:MODEL_HASH_DIGITS]


def lora_hash(path: Path) -> str:
    return tensor_data_sha256(path)[:LORA_HASH_DIGITS]
