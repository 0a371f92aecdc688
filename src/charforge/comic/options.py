"""What ``charforge comic`` takes beyond the storyboard itself (which holds every drawing setting of its panels)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..options import Options


class ComicOptions(Options):
    """Where the pages go, and which panel to redraw with another seed."""

    out: Path | None = Field(None, description="Output folder (default: beside STORY, named after it).")
    panel: int | None = Field(
        None, ge=1, description="Redraw this panel (1 = first) with another seed: --seed, else the next one."
    )
    seed: int | None = Field(None, description="The new seed for --panel.")
