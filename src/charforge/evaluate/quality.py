"""The automated quality ratio and the best-checkpoint rule.

The thesis' quality ratio was the share of images without imperfections, judged by eye. Here an
image *passes* when its identity and prompt scores clear thresholds **calibrated on the character's
own reference images**, so no constant has to be guessed per model or per character:

- identity (``clip_i``, ``dino``): each reference's mean similarity to the *other* references
  (leave-one-out) measures how alike two true drawings of the character are; the threshold is the
  lowest of these, i.e. a generated image passes if it resembles the references at least as much as
  the least typical reference resembles the rest. Needs two or more references.
- prompt (``clip_t``): each reference's similarity to its own caption (identifier removed); the
  threshold is the lowest, i.e. an image must match its prompt as well as a true drawing matches
  its description.
- in the mini world the judge reads attributes exactly, so no calibration is needed: an image
  passes when every identity attribute of the character *and* every asked attribute is found.

Every available criterion must pass. The best checkpoint has the highest quality ratio; ties go to
the higher mean identity score (judge share of identity attributes, else DINO, else CLIP-I), then to
the earlier step (fewer steps, less overfitting). Step 0 (the base model) is a reference row only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .results import AVERAGED, PointSummary

IDENTITY_ORDER = ("identity_share", "dino", "clip_i")


@dataclass
class Thresholds:
    values: dict[str, float] = field(default_factory=dict)
    judged: bool = False
    notes: list[str] = field(default_factory=list)

    def passes(self, row: dict) -> bool | None:
        """Whether one image passes every available criterion (None when there is none)."""
        if self.judged:
            return row.get("identity", 0.0) >= 1.0 and row.get("fidelity", 0.0) >= 1.0
        checks = [row[name] >= limit for name, limit in self.values.items() if name in row]
        return all(checks) if checks else None

    def failures(self, row: dict) -> list[str]:
        """The criteria one image fails (judged: which of identity / asked attributes the judge missed)."""
        if self.judged:
            return [name for name in ("identity", "fidelity") if row.get(name, 0.0) < 1.0]
        return [name for name, limit in self.values.items() if name in row and row[name] < limit]

    def to_dict(self) -> dict:
        how = "judge: every identity and asked attribute found" if self.judged else "calibrated on the references"
        return {"values": {k: round(v, 4) for k, v in self.values.items()}, "rule": how, "notes": self.notes}


def judged_row(identity_found: Sequence[bool] | None, asked_hits: Sequence[bool]) -> dict[str, float]:
    """One judged picture's scores: ``identity`` (1.0 when the judge found every identity attribute of the character)
    and ``identity_share`` (the share it found), when there is a character; ``fidelity``, the share of the asked
    attributes found (1.0 when nothing checkable was asked). ``Thresholds(judged=True)`` passes a row at 1.0 and 1.0."""
    row: dict[str, float] = {}
    if identity_found is not None:
        row["identity"] = float(all(identity_found))
        row["identity_share"] = sum(identity_found) / len(identity_found)
    row["fidelity"] = sum(asked_hits) / len(asked_hits) if asked_hits else 1.0
    return row


def calibrate(loo: dict[str, list[float]], caption_scores: list[float] | None, *, judged: bool) -> Thresholds:
    """Thresholds from the references' leave-one-out similarities and caption scores (see the module doc)."""
    thresholds = Thresholds(judged=judged)
    if judged:
        return thresholds
    for name, values in loo.items():
        if values:
            thresholds.values[name] = float(min(values))
        else:
            thresholds.notes.append(f"{name}: one reference only, so no identity threshold (add references)")
    if caption_scores:
        thresholds.values["clip_t"] = float(min(caption_scores))
    if not thresholds.values:
        thresholds.notes.append("no image encoder available: the quality ratio is not computed (pass --clip/--dino)")
    return thresholds


def summarise(rows: list[dict], **fields) -> PointSummary:
    """Means of every score present, and the quality ratio (share of images that pass); ``fields`` name the point."""
    means: dict = {}
    for name in AVERAGED:
        values = [r[name] for r in rows if name in r]
        if values:
            means[name] = round(float(np.mean(values)), 4)
    verdicts = [r["ok"] for r in rows if r.get("ok") is not None]
    ratio = round(float(np.mean(verdicts)), 4) if verdicts else None
    return PointSummary(images=len(rows), quality_ratio=ratio, **means, **fields)


def identity_score(summary: PointSummary) -> float:
    return next((summary.value(name) for name in IDENTITY_ORDER if summary.value(name) is not None), 0.0)


def ranking(point: PointSummary) -> tuple[float, float, int]:
    """The best-checkpoint rule as a sort key: quality ratio, then identity, then the earlier step."""
    return (point.quality_ratio or 0.0, identity_score(point), -point.step)


def best_point(points: list[PointSummary]) -> PointSummary | None:
    """The best trained point by the rule in the module doc (the base is a reference row only)."""
    trained = [p for p in points if not p.base]
    return max(trained, key=ranking) if trained else None


def no_pass_note(points: list[PointSummary], rows: list[dict], thresholds: Thresholds) -> str | None:
    """When no trained point passes anything, the "best" one is only the tie-break's pick: say so, and what fails most."""
    trained = [p for p in points if not p.base]
    if not trained or any((p.quality_ratio or 0.0) > 0 for p in trained) or all(p.quality_ratio is None for p in trained):
        return None
    names = {p.point for p in trained}
    mine = [r for r in rows if r.get("point") in names]
    counts: dict[str, int] = {}
    for row in mine:
        for name in thresholds.failures(row):
            counts[name] = counts.get(name, 0) + 1
    worst = ", ".join(f"{name} in {n / len(mine):.0%} of pictures" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return f"no checkpoint passes the criteria; ranked by identity score (failing most: {worst or 'none'})"


def halving_seeds(seeds: Sequence[int]) -> list[list[int]]:
    """The seeds of each round of :func:`successive_halving`: the first 1, 2, 4, ... of them, then all."""
    rounds, count = [], 1
    while count < len(seeds):
        rounds.append(list(seeds[:count]))
        count *= 2
    rounds.append(list(seeds))
    return rounds


@dataclass
class Halving:
    summaries: list[PointSummary]  # every trained point, summarised on the seeds of the last round it took part in
    rounds: list[dict]  # per round: its seeds and the points drawn with them
    best: PointSummary | None  # the best of the last round, by :func:`ranking`


def successive_halving(
    points: Sequence[str], seeds: Sequence[int], summarise_at: Callable[[list[str], list[int]], list[PointSummary]]
) -> Halving:
    """Pick the best checkpoint without drawing every picture at every checkpoint.

    Every point is summarised on the first seed, the better half (by the best-checkpoint rule) on the first two, the
    better half of those on four, ... and the leaders on all seeds; the best is chosen among the last round only, so
    a point seen on few pictures never wins by their noise. ``summarise_at(points, seeds)`` returns the points'
    summaries on those seeds (pictures drawn in an earlier round are reused by the caller's cache, so the cost is
    about ``2 * points * prompts`` pictures however many seeds there are, against ``points * prompts * seeds``).
    """
    alive = list(points)
    last: dict[str, PointSummary] = {}
    rounds: list[dict] = []
    schedule = halving_seeds(seeds)
    for i, round_seeds in enumerate(schedule):
        summaries = summarise_at(alive, round_seeds)
        last.update((s.point, s) for s in summaries)
        rounds.append({"seeds": round_seeds, "points": list(alive)})
        if i < len(schedule) - 1:
            ranked = sorted(summaries, key=ranking, reverse=True)
            alive = [s.point for s in ranked[: max(1, math.ceil(len(ranked) / 2))]]
    best = best_point([last[name] for name in alive])
    return Halving([last[name] for name in points], rounds, best)
