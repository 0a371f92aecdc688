"""A judge that reads attributes back from pictures, found by registration so evaluation never imports the world that
provides it (the mini world registers its own: ``charforge.world``).

With a judge, ``evaluate`` scores a character by what the judge reads (identity, prompt fidelity) beside CLIP / DINO,
and a prompt set may say what each prompt asks (``asked:``); the judge also checks that those attribute values exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PIL import Image

from ..errors import CharforgeError


class Judging(Protocol):
    """What evaluation needs of a judge and the world it reads; only ``read`` needs the judge's weights."""

    def read(self, images: Sequence[Image.Image]) -> list[dict[str, str]]:
        """Per picture, the value the judge reads for every attribute."""

    def identity(self, values: dict[str, str], character: str) -> dict[str, bool]:
        """Which identity attributes of the named character a reading found."""

    def checkable(self, asked: dict[str, str]) -> dict[str, str]:
        """What can be checked of a request (e.g. no expression when the asked pose hides the face)."""

    def check_value(self, name: str, value: str, where: str) -> None:
        """Raise a CharforgeError when ``value`` is not a valid value of attribute ``name``."""


_REGISTERED: list[Judging] = []


def register_judging(judge: Judging) -> None:
    """The judge evaluation uses from now on (it should load its weights on its first ``read``, not before)."""
    _REGISTERED[:] = [judge]


def judging() -> Judging:
    """The registered judge."""
    if not _REGISTERED:
        raise CharforgeError("no judge is registered: import charforge.world (or charforge.api) first")
    return _REGISTERED[0]
