"""What every page of the UI shares: the home folder of character workspaces and the job queue."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .. import api
from ..errors import CharforgeError
from ..recipes.jobs import JobQueue
from ..workspace import Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass
class Context:
    root: Path
    queue: JobQueue

    def names(self) -> list[str]:
        return [ws.root.name for ws in api.list_workspaces(self.root)]

    def workspace(self, name: str | None) -> Workspace:
        """The workspace a page's character menu names; a name that is not one of the home folder's is refused
        (the value comes from the browser)."""
        if not name:
            raise gr.Error("choose a character first (or create one on the Characters page)")
        if not _NAME.match(name) or name not in self.names():
            raise gr.Error(f"no character {name!r} in {self.root}")
        return api.open_workspace(self.root / name)

    def new_folder(self, name: str) -> Path:
        if not _NAME.match(name or ""):
            raise gr.Error("a character's folder name is letters, digits, '.', '_' and '-' (up to 64), e.g. unicorn-girl")
        return self.root / name


def file_url(path: Path | str) -> str:
    """A link the browser opens through gradio's file route (allowed for the home folder only)."""
    return f"/gradio_api/file={Path(path).resolve()}"


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def guarded(fn):
    """A handler whose CharforgeError becomes the page's one-line error toast (no traceback in the browser)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CharforgeError as exc:
            raise gr.Error(one_line(exc), print_exception=False) from None

    return wrapper
