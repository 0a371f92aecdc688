"""What an evaluation finds, as types: a checkpoint's summary and a run's metrics (``metrics.json``).

The CLI's table, the HTML report, the web UI, the sweep and the training-time watch read the same fields, so a
score is named in one place. Files written by older versions load too: keys this version does not know are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from .. import atomic

# The per-image score columns averaged into a point's summary.
AVERAGED = ("clip_i", "dino", "clip_t", "palette", "identity", "identity_share", "fidelity")
# The columns a table of checkpoints shows, in this order (the CLI, the HTML report, the web UI).
POINT_COLUMNS = ("quality_ratio", "human_ratio", "identity", "identity_share", "fidelity", "clip_i", "dino", "clip_t", "palette")


class Result(BaseModel):
    model_config = ConfigDict(extra="allow")


class PointSummary(Result):
    """One checkpoint (or the base, step 0): the means of its pictures' scores and its quality ratio."""

    step: int
    point: str = ""  # "step-000600"; "" for an evaluation during training
    label: str = ""
    base: bool = False  # the untrained base: a reference row, never the best
    images: int = 0
    quality_ratio: float | None = None  # share of pictures passing every criterion (None: no criterion)
    human_ratio: float | None = None  # share a person rated good (charforge rate)
    identity: float | None = None
    identity_share: float | None = None
    fidelity: float | None = None
    clip_i: float | None = None
    dino: float | None = None
    clip_t: float | None = None
    palette: float | None = None
    seconds: float | None = None  # during training: what the evaluation cost

    def value(self, column: str) -> float | None:
        return getattr(self, column)


class BestPoint(Result):
    point: str
    step: int
    quality_ratio: float | None = None


class EvalMetrics(Result):
    """A run's evaluation, as ``metrics.json`` holds it."""

    run: str
    base: str
    method: str
    prompt_set: str
    prompts: list[dict[str, Any]]  # id, prompt, scored_as, asked
    seeds: list[int]
    inference_steps: int
    guidance: float
    encoders: dict[str, str | None]
    world_character: str | None = None
    references: list[str]
    thresholds: dict[str, Any]
    notes: list[str]
    points: list[PointSummary]
    best: BestPoint | None
    rule: str
    rounds: list[dict[str, Any]] | None = None  # successive halving: each round's seeds and points
    timing: dict[str, float]
    images: list[dict[str, Any]]  # one row per picture: point, step, prompt, seed, file, ok and its scores
    human: dict[str, Any] | None = None  # charforge rate's summary

    def point_named(self, name: str) -> PointSummary | None:
        return next((p for p in self.points if p.point == name), None)

    @property
    def best_summary(self) -> PointSummary | None:
        return self.point_named(self.best.point) if self.best else None

    def columns(self) -> list[str]:
        """Those of :data:`POINT_COLUMNS` that some checkpoint has a value for."""
        return [k for k in POINT_COLUMNS if any(p.value(k) is not None for p in self.points)]

    def save(self, path: Path) -> None:
        atomic.write_text(path, json.dumps(self.model_dump(mode="json"), indent=1))

    @classmethod
    def load(cls, path: Path) -> EvalMetrics:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))
