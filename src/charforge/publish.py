"""Upload a run's result folder to the Hugging Face Hub as a model repository.

The token is huggingface_hub's own (``HF_TOKEN`` or the login ``hf auth login`` stores): charforge never asks for
it, prints it or writes it anywhere. What is uploaded is exactly :func:`files_to_push`, the result folder as training
wrote it (weights in every format, the model card and its sample grid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CharforgeError
from .train.model_card import CARD_FILE


def files_to_push(final_dir: Path) -> list[str]:
    """The result folder's files, relative to it (temporary and hidden files left out)."""
    if not (final_dir / CARD_FILE).is_file():
        raise CharforgeError(
            f"{final_dir}: no model card ({CARD_FILE}); it was written by an older charforge: promote a checkpoint "
            "again (`charforge evaluate --promote` or `charforge.api.promote`) to rewrite the folder"
        )
    files = [
        p.relative_to(final_dir).as_posix()
        for p in sorted(final_dir.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(final_dir).parts)
    ]
    return files


def push_folder(final_dir: Path, repo_id: str, *, private: bool = False, api: Any = None) -> str:
    """Create (or reuse) model repository ``repo_id`` and upload the folder's files; returns the repository URL.

    ``api`` is a ``huggingface_hub.HfApi`` (one that fakes the Hub in tests)."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CharforgeError(f"--repo {repo_id!r}: give it as user/name (or organisation/name)")
    files = files_to_push(final_dir)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(final_dir),
            repo_id=repo_id,
            repo_type="model",
            allow_patterns=files,
            commit_message=f"charforge: {final_dir.parent.name}",
        )
    except LocalTokenNotFoundError as exc:
        raise CharforgeError("push: not logged in to Hugging Face; set HF_TOKEN or run `hf auth login`") from exc
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        why = {401: "the token is not valid", 403: "the token may not write there"}.get(status, str(exc).splitlines()[0])
        raise CharforgeError(f"push to {repo_id}: {why}") from exc
    except OSError as exc:  # no network: requests' ConnectionError is an OSError
        raise CharforgeError(f"push to {repo_id}: the Hub cannot be reached ({str(exc).splitlines()[0][:120]})") from exc
    return str(url)
