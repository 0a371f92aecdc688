"""Errors a user can fix.

Library code raises :class:`CharforgeError` (or a subclass) with a one-line message that names the
file or option at fault and says how to fix it; only the CLI turns it into exit code 2.
"""

from __future__ import annotations


class CharforgeError(Exception):
    """A problem with the user's input or environment, reported as one line, exit code 2."""


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once a checkpoint has been written, so the CLI can say where it is."""

    def __init__(self, step: int, checkpoint: str) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved to {checkpoint}")
        self.step = step
        self.checkpoint = checkpoint


class PicturesInterrupted(Exception):
    """Raised on Ctrl-C while drawing, once the pictures already drawn are safely written; the CLI exits 130."""

    def __init__(self, written: int, total: int, folder: str, hint: str = "") -> None:
        super().__init__(f"interrupted; {written} of {total} pictures written to {folder}{hint}")
        self.written = written
        self.total = total
