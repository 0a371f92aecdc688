"""Human ratings: good / flawed with optional tags, stored in ``ratings.sqlite`` in the workspace.

The eye is still needed where the automated scores are blind (hands, faces, extra limbs). Each
rating is committed as it is given, so quitting or a crash loses nothing. A rating belongs to a
picture's *contents* (its SHA-256), so re-drawing a picture at the same path asks for it again.
Per checkpoint, the human quality ratio (share rated good) sits beside the automated one, and their
agreement is reported as the share of pictures on which both agree and Cohen's kappa.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..digest import file_digest
from ..errors import CharforgeError

TAGS = ("hands", "face", "colours", "extra limbs", "off-model", "background", "blurry")
_SCHEMA = """
create table if not exists ratings (
    run text not null,
    image text not null,       -- path relative to the run's eval folder
    digest text not null,      -- the picture's contents when it was rated
    good integer not null,     -- 1 good, 0 flawed
    tags text not null default '',
    rater text not null default '',
    rated_at real not null,
    primary key (run, image, digest, rater)
)
"""


@dataclass(frozen=True)
class Rating:
    run: str
    image: str
    good: bool
    tags: tuple[str, ...] = ()
    rater: str = ""


class RatingStore:
    """``<workspace>/ratings.sqlite``; one row per (run, picture contents, rater)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path)
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise CharforgeError(f"{path}: not a readable ratings database ({exc}); move it aside to start afresh") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RatingStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put(self, rating: Rating, eval_dir: Path) -> None:
        digest = file_digest(eval_dir / rating.image)
        self._db.execute(
            "insert or replace into ratings values (?, ?, ?, ?, ?, ?, ?)",
            (rating.run, rating.image, digest, int(rating.good), ",".join(rating.tags), rating.rater, time.time()),
        )
        self._db.commit()

    def get(self, run: str, image: str, eval_dir: Path, rater: str = "") -> Rating | None:
        digest = file_digest(eval_dir / image)
        row = self._db.execute(
            "select good, tags from ratings where run=? and image=? and digest=? and rater=?", (run, image, digest, rater)
        ).fetchone()
        if row is None:
            return None
        return Rating(run, image, bool(row[0]), tuple(t for t in row[1].split(",") if t), rater)

    def all(self, run: str, images: Iterable[str], eval_dir: Path, rater: str = "") -> dict[str, Rating]:
        found = {}
        for image in images:
            rating = self.get(run, image, eval_dir, rater)
            if rating is not None:
                found[image] = rating
        return found


def cohen_kappa(a: list[bool], b: list[bool]) -> float | None:
    """Agreement beyond chance between two raters of the same items (None when undefined)."""
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    if expected >= 1.0:
        return None if observed < 1.0 else 1.0
    return (observed - expected) / (1 - expected)


def human_summary(images: list[dict], ratings: dict[str, Rating]) -> dict:
    """Human quality ratio per point, agreement with the automated verdicts, and tag counts (``images``: the
    evaluation's per-picture rows)."""
    per_point: dict[str, dict] = {}
    human, auto = [], []
    tags: dict[str, int] = {}
    for row in images:
        rating = ratings.get(row["file"])
        if rating is None:
            continue
        stats = per_point.setdefault(row["point"], {"rated": 0, "good": 0})
        stats["rated"] += 1
        stats["good"] += int(rating.good)
        for tag in rating.tags:
            tags[tag] = tags.get(tag, 0) + 1
        if row.get("ok") is not None:
            human.append(rating.good)
            auto.append(bool(row["ok"]))
    for stats in per_point.values():
        stats["human_ratio"] = round(stats["good"] / stats["rated"], 4)
    agreement = round(sum(h == a for h, a in zip(human, auto, strict=True)) / len(human), 4) if human else None
    kappa = cohen_kappa(human, auto)
    return {
        "points": per_point,
        "rated": sum(s["rated"] for s in per_point.values()),
        "agreement": agreement,
        "kappa": None if kappa is None else round(kappa, 4),
        "compared": len(human),
        "tags": dict(sorted(tags.items(), key=lambda kv: -kv[1])),
    }
