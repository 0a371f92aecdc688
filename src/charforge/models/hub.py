"""Whether a model id can come from the Hugging Face hub now, decided once, before any download is tried.

Offline, transformers and huggingface_hub retry each file with back-off before giving up (145 s and 20
warning lines for one BLIP captioner). One quick connection attempt tells that the hub is unreachable;
then a model already in the local cache is loaded from it, and any other is refused in one line that
says what to pass instead. ``HF_HUB_OFFLINE=1`` is honoured without trying the network at all.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..errors import CharforgeError

PROBE_TIMEOUT_S = 3.0


def _offline_by_setting() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def _hub_answers() -> bool:
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def _cached(repo_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # an id that is not a valid repo name is not cached either
        return False


def local_files_only(source: str, *, what: str, instead: str, config_file: str = "config.json") -> bool:
    """For ``from_pretrained(source, local_files_only=...)``: True when the hub is out of reach but the model is
    cached; raises a one-line error when it is neither local, cached nor reachable. ``instead``: what to pass;
    ``config_file``: the file every such repository has (``model_index.json`` for a diffusers pipeline)."""
    if Path(source).expanduser().exists():
        return False
    if source.startswith(("/", "./", "../", "~")) or source.count("/") > 1:  # a folder, not a hub id like org/name
        raise CharforgeError(f"{what} {source}: cannot load (no such folder)")
    offline = _offline_by_setting()
    if not offline and _hub_answers():
        return False
    if _cached(source, config_file):
        return True
    why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face hub cannot be reached"
    raise CharforgeError(f"{what}: {source!r} is not on this machine and {why}; {instead}")
