"""Atomic writes: a crash or a full disk never leaves a half-written result behind.

Every file is written to a temporary name in the same folder and renamed over the target, which
POSIX guarantees to be atomic; folders (checkpoints) are filled under a temporary name and renamed
when complete, so a reader sees the old folder or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import CharforgeError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, *, folder: bool) -> None:
    """mkstemp / mkdtemp create private (0600 / 0700) temporaries; the result gets the mode any tool would give it,
    the user's umask applied to 0666 (files) or 0777 (folders), so group and others can read a generated picture."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _disk_error(target: Path, exc: OSError) -> CharforgeError:
    if exc.errno == errno.ENOSPC:
        return CharforgeError(f"{target}: disk full while writing; the previous version is intact")
    return CharforgeError(f"{target}: could not write ({exc.strerror or exc}); the previous version is intact")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _usual_mode(tmp_path, folder=False)
        os.replace(tmp_path, target)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise _disk_error(target, exc) from exc
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; when the block succeeds it becomes ``target``.

    With ``replace`` an existing ``target`` is swapped out only after the new folder is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not replace:
        raise CharforgeError(f"{target} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        _usual_mode(tmp, folder=True)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _disk_error(target, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
