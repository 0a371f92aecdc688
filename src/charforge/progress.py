"""Progress of a long job for a listener other than the terminal's bar: the web UI's job queue.

The loops that draw or train report each finished unit with :func:`report`. A listener installed with
:func:`listen` in the same thread sees them, and may stop the job by raising :class:`Cancelled` from its
callback: the loop stops between two pictures, so every picture already written stays whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Listener = Callable[[str, int, int], None]  # (what, done, total)
_listener: ContextVar[Listener | None] = ContextVar("charforge_progress", default=None)


class Cancelled(Exception):
    """The listener asked the job to stop."""


@contextmanager
def listen(listener: Listener) -> Iterator[None]:
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def report(what: str, done: int, total: int) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(what, done, total)
