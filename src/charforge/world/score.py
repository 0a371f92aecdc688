"""Scores for mini-world pictures, read by the judge.

- *prompt fidelity*: the share of asked attributes the judge finds (an expression is not asked of a
  pose that hides the face);
- *identity*: the share of pictures in which every identity attribute of the target character
  (hair colour and style, outfit colour and type, accessory, skin) is found; the target is the taught
  character, or with none given, the character each prompt describes in full (the base model's ceiling);
- *palette distance*: CIEDE2000 between the pictures' dominant colours and the reference images'
  (each colour to its nearest counterpart, weighted by share, averaged both ways; background
  excluded where it is flat). Needs no model, so it works for any character.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..evaluate.palette import palette_distance
from ..evaluate.quality import Thresholds, judged_row
from .attributes import CHARACTER_VALUES, FACELESS_POSES, Character, check_value, held_out
from .judge import Judge, Reading

IDENTITY_ATTRIBUTES = tuple(CHARACTER_VALUES)


def asked_attributes(asked: dict[str, str]) -> dict[str, str]:
    """What can be checked of a request: no expression when the asked pose hides the face."""
    if asked.get("pose") in FACELESS_POSES:
        return {k: v for k, v in asked.items() if k != "expression"}
    return dict(asked)


def attribute_hits(readings: Sequence[Reading], asked: Sequence[dict[str, str]]) -> dict[str, list[bool]]:
    hits: dict[str, list[bool]] = {}
    for reading, request in zip(readings, asked, strict=True):
        for name, value in asked_attributes(request).items():
            hits.setdefault(name, []).append(reading.values[name] == value)
    return hits


def prompt_fidelity(readings: Sequence[Reading], asked: Sequence[dict[str, str]]) -> float:
    found = [hit for values in attribute_hits(readings, asked).values() for hit in values]
    return float(np.mean(found)) if found else float("nan")


def identity_matches(values: dict[str, str], character: Character) -> dict[str, bool]:
    """Which of the character's identity attributes a reading found."""
    return {name: values[name] == getattr(character, name) for name in IDENTITY_ATTRIBUTES}


def identity_found(readings: Sequence[Reading], targets: Sequence[Character]) -> list[dict[str, bool]]:
    """Per picture, which identity attributes of its target character the judge found."""
    return [identity_matches(r.values, c) for r, c in zip(readings, targets, strict=True)]


def identity_rate(found: Sequence[dict[str, bool]]) -> float:
    """The share of pictures in which every identity attribute of their target character is found."""
    return float(np.mean([all(f.values()) for f in found])) if found else float("nan")


def quality_ratio(readings: Sequence[Reading], asked: Sequence[dict[str, str]], found: Sequence[dict[str, bool]]) -> float:
    """The share of flawless pictures, the thesis' quality ratio read by the judge: every identity attribute and every
    asked attribute found (``charforge evaluate``'s pass rule in the mini world)."""
    passes = Thresholds(judged=True).passes
    rows = [
        judged_row(list(f.values()), [r.values[name] == value for name, value in asked_attributes(a).items()])
        for r, a, f in zip(readings, asked, found, strict=True)
    ]
    return float(np.mean([passes(row) for row in rows])) if rows else float("nan")


def identity_attribute_rates(found: Sequence[dict[str, bool]]) -> dict[str, float]:
    """Per identity attribute, the share of pictures where the judge found the target character's value:
    a graded view of identity that shows which attribute holds it back."""
    return {name: float(np.mean([f[name] for f in found])) for name in IDENTITY_ATTRIBUTES} if found else {}


def described_characters(asked: Sequence[dict[str, str]]) -> list[Character] | None:
    """The character each request spells out in full, or None unless every request names every identity attribute.

    Scoring fully described characters gives identity the base model reaches when the words say everything:
    the ceiling for what teaching a character by its identifier can reach on the same model.
    """
    if not asked or not all(set(IDENTITY_ATTRIBUTES) <= set(request) for request in asked):
        return None
    return [Character(**{name: request[name] for name in IDENTITY_ATTRIBUTES}) for request in asked]


@dataclass
class WorldScores:
    count: int
    prompt_fidelity: float
    per_attribute: dict[str, float]
    identity: float | None = None
    palette_distance: float | None = None
    readings: list[dict[str, str]] = field(default_factory=list)
    identity_attributes: dict[str, float] = field(default_factory=dict)
    quality_ratio: float | None = None

    @property
    def identity_share(self) -> float | None:
        """The mean share of identity attributes found (1.0 = every attribute in every picture)."""
        return float(np.mean(list(self.identity_attributes.values()))) if self.identity_attributes else None

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "prompt_fidelity": round(self.prompt_fidelity, 4),
            "per_attribute": {k: round(v, 4) for k, v in self.per_attribute.items()},
            "identity": None if self.identity is None else round(self.identity, 4),
            "identity_share": None if self.identity_share is None else round(self.identity_share, 4),
            "identity_attributes": {k: round(v, 4) for k, v in self.identity_attributes.items()},
            "palette_distance": None if self.palette_distance is None else round(self.palette_distance, 3),
            "quality_ratio": None if self.quality_ratio is None else round(self.quality_ratio, 4),
        }


def score(
    images: Sequence[Image.Image],
    asked: Sequence[dict[str, str]],
    *,
    character: Character | None = None,
    references: Sequence[Image.Image] | None = None,
    judge: Judge | None = None,
) -> WorldScores:
    """Every score for ``images``, each made from the request ``asked[i]`` (attribute -> value)."""
    judge = judge or Judge.load()
    readings = judge.read(list(images))
    hits = attribute_hits(readings, asked)
    targets = [character] * len(readings) if character is not None else described_characters(asked)
    found = None if targets is None else identity_found(readings, targets)
    return WorldScores(
        count=len(images),
        prompt_fidelity=prompt_fidelity(readings, asked),
        per_attribute={name: float(np.mean(v)) for name, v in hits.items()},
        identity=None if found is None else identity_rate(found),
        palette_distance=None if not references else palette_distance(images, references),
        readings=[r.values for r in readings],
        identity_attributes={} if found is None else identity_attribute_rates(found),
        quality_ratio=None if found is None else quality_ratio(readings, asked, found),
    )


class WorldJudging:
    """The mini world's judge as ``charforge evaluate`` uses it (:mod:`charforge.evaluate.judging`); the judge's
    weights are loaded on the first reading."""

    def __init__(self) -> None:
        self._judge: Judge | None = None

    def read(self, images: Sequence[Image.Image]) -> list[dict[str, str]]:
        if self._judge is None:
            self._judge = Judge.load()
        return [r.values for r in self._judge.read(list(images))]

    def identity(self, values: dict[str, str], character: str) -> dict[str, bool]:
        return identity_matches(values, held_out(character))

    def checkable(self, asked: dict[str, str]) -> dict[str, str]:
        return asked_attributes(asked)

    def check_value(self, name: str, value: str, where: str) -> None:
        check_value(name, value, where)
