"""Matplotlib without a display, and figures written atomically (a crash never leaves half a PNG)."""

from __future__ import annotations

from pathlib import Path

from . import atomic


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, *, tight: bool = False) -> None:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **({"bbox_inches": "tight"} if tight else {}))
    pyplot().close(fig)
