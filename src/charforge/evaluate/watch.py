"""Scoring a run while it trains (``train --eval-every N``), with the scores and the rule of ``charforge evaluate``.

Every N steps the loop hands the live pipeline to :class:`TrainingWatch`, which draws a small fixed prompt set
(the first ``eval_prompts_count`` prompts of the set ``evaluate`` uses, on its first ``eval_seeds_count`` seeds, one
by default, at ``eval_inference_steps``), scores it (the judge in the mini world; CLIP / DINO / palette otherwise)
and ranks the step against the earlier ones by the rule that picks ``evaluate``'s best checkpoint. With
``--stop-when-plateau K`` it tells the loop to stop once K evaluations in a row have not beaten the best; the run's
``final/`` is then the best checkpoint (``train.export.promote``). The history goes to the run's ``watch.json`` and
into ``loss.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import atomic
from ..config import TrainConfig
from ..errors import CharforgeError
from ..generate.schedulers import make_scheduler, model_sampler
from ..generate.text2image import draw_batch
from ..models.loading import recommended_guidance
from ..workspace import Workspace
from .evaluate import calibrate_thresholds, default_prompt_file, make_scorer
from .options import DEFAULT
from .prompts import load_prompt_set
from .quality import best_point, identity_score, summarise
from .results import PointSummary

WATCH_FILE = "watch.json"


def read_watch(run_dir: Path) -> list[dict]:
    """A run's evaluations while it trained (``watch.json``), oldest first; none when it was not scored."""
    path = run_dir / WATCH_FILE
    return json.loads(path.read_text(encoding="utf-8"))["evaluations"] if path.is_file() else []


@dataclass
class TrainingWatch:
    workspace: Workspace
    config: TrainConfig
    history: list[PointSummary] = field(default_factory=list)  # per evaluation: its step, seconds and scores
    _since_best: int = 0

    def __post_init__(self) -> None:
        ws, config = self.workspace, self.config
        source = Path(config.eval_prompts) if config.eval_prompts else default_prompt_file(ws)
        prompt_set = load_prompt_set(source, token=ws.character.token, class_word=ws.character.class_word)
        self.prompts = prompt_set.prompts[: config.eval_prompts_count]
        self.seeds = prompt_set.seeds[: config.eval_seeds_count]
        self.guidance = prompt_set.guidance if prompt_set.guidance is not None else recommended_guidance(config.base)
        self.sampler = model_sampler(DEFAULT, config.base)  # evaluate's sampler, so a step scores as evaluate scores it
        self.notes: list[str] = []
        self.scorer = make_scorer(ws, prompt_set, clip="default", dino="default", batch_size=16, notes=self.notes)
        if self.scorer.judge is None and self.scorer.clip is None and self.scorer.dino is None:
            raise CharforgeError(
                "--eval-every needs something to score with: CLIP or DINO (download them once, or set HF_HUB_OFFLINE=0), "
                f"or a mini-world character; {'; '.join(self.notes)}"
            )
        self.thresholds = calibrate_thresholds(self.scorer)

    @property
    def best(self) -> PointSummary | None:
        return best_point(self.history)

    def observe(self, pipe, step: int, run_dir: Path, resolution: int) -> bool:
        """Score the pipeline as it is at ``step``; True when the run should stop (a plateau)."""
        started = time.perf_counter()
        own = pipe.scheduler  # the validation grids keep the model's own sampler
        pipe.scheduler = make_scheduler(self.sampler, own.config, type(pipe).__name__)
        try:
            images = draw_batch(
                pipe,
                [p.text for p in self.prompts for _ in self.seeds],
                [seed for _ in self.prompts for seed in self.seeds],
                negative_prompt=self.prompts[0].negative,
                steps=self.config.eval_inference_steps,
                guidance=self.guidance,
                width=resolution,
                height=resolution,
            )
        finally:
            pipe.scheduler = own
        shown = [p for p in self.prompts for _ in self.seeds]  # each prompt once per seed, as drawn
        rows = self.scorer.score(images, [p.plain for p in shown], [p.asked for p in shown])
        for row in rows:
            row["ok"] = self.thresholds.passes(row)
        before = self.best
        summary = summarise(rows, step=step, seconds=round(time.perf_counter() - started, 2))
        self.history.append(summary)
        self._since_best = 0 if self.best is summary else self._since_best + 1
        summary.improved = before is None or self.best is summary
        summary.score = self.score_of(summary)
        evaluations = [s.model_dump(exclude_none=True) for s in self.history]
        atomic.write_text(run_dir / WATCH_FILE, json.dumps({"notes": self.notes, "evaluations": evaluations}, indent=1))
        patience = self.config.stop_when_plateau
        return bool(patience) and self._since_best >= patience

    def score_of(self, summary: PointSummary) -> float:
        """The number a curve shows for one evaluation, what decides the best: the quality ratio once a picture has
        passed, the identity score while none has (the mini world's strict rule passes few: a curve flat at 0 showed
        nothing, while the rule's tie-break on identity was choosing the best)."""
        passed = any((s.quality_ratio or 0.0) > 0 for s in self.history)
        return summary.quality_ratio if passed and summary.quality_ratio is not None else identity_score(summary)

    def curve(self) -> list[tuple[int, float]]:
        return [(s.step, self.score_of(s)) for s in self.history]
