"""``charforge evaluate``: draw a fixed prompt set at every checkpoint of a run, score every picture,
compute the quality ratio per checkpoint, pick the best one, and write ``metrics.json`` and a report.

Outputs go to ``runs/<run>/eval/``: ``images/<point>/`` (cached pictures), ``metrics.json``,
``report.html`` with ``report/`` (grids, curves, the loss curve, a GIF of one prompt over training).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from .. import progress
from ..errors import CharforgeError
from ..generate.picture_cache import PictureCache
from ..generate.schedulers import model_sampler
from ..models.loading import recommended_guidance
from ..workspace import Workspace
from .encoders import DEFAULT_CLIP, DEFAULT_DINO, ClipEncoder, DinoEncoder
from .judging import judging
from .options import DEFAULT, EvalOptions
from .prompts import DEFAULT_PROMPTS, WORLD_PROMPTS, PromptSet, load_prompt_set, remove_token
from .quality import Thresholds, best_point, calibrate, no_pass_note, successive_halving, summarise
from .results import BestPoint, EvalMetrics, PointSummary
from .runner import CheckpointPainter, EvalPoint, Job, draw_all, run_points
from .scores import References, Scorer, leave_one_out, open_rgb

log = logging.getLogger("charforge.evaluate")
METRICS_FILE = "metrics.json"


@dataclass
class EvalResult:
    folder: Path
    metrics: EvalMetrics

    @property
    def report(self) -> Path:
        return self.folder / "report.html"

    @property
    def best(self) -> BestPoint | None:
        return self.metrics.best


def _encoder(kind: str, option: str | None, default: str, notes: list[str], batch_size: int):
    if option is None or option == "none":
        return None
    source = default if option == DEFAULT else option
    loader = ClipEncoder if kind == "clip" else DinoEncoder
    try:
        return loader.load(source, batch_size)
    except CharforgeError as exc:
        if option != DEFAULT:
            raise
        notes.append(f"{kind.upper()} skipped: {exc} (pass --{kind} ID_OR_FOLDER, or --{kind} none)")
        return None


def default_prompt_file(ws: Workspace) -> Path:
    return WORLD_PROMPTS if ws.character.world else DEFAULT_PROMPTS


def _world(ws: Workspace, prompt_set: PromptSet):
    if not ws.character.world:
        if prompt_set.judged:
            raise CharforgeError(
                f"{prompt_set.source}: its prompts ask mini-world attributes (asked:) but {ws.root} is not a mini-world character"
            )
        return None, None
    return judging(), ws.character.world


def make_scorer(
    ws: Workspace, prompt_set: PromptSet, *, clip: str | None, dino: str | None, batch_size: int, notes: list[str]
) -> Scorer:
    """What scores a workspace's pictures: its references, CLIP / DINO as asked, the mini world's judge for a
    mini-world character. Shared by ``evaluate`` and the scoring a run does while it trains (``--eval-every``)."""
    token, class_word = ws.character.token, ws.character.class_word
    reference_paths = ws.training_images()
    references = References.load(
        reference_paths, [remove_token(ws.caption_for(p) or f"a drawing of {class_word}", token) for p in reference_paths]
    )
    judge, character = _world(ws, prompt_set)
    return Scorer(
        references,
        ws.root / ".cache" / "embeddings",
        clip=_encoder("clip", clip, DEFAULT_CLIP, notes, batch_size),
        dino=_encoder("dino", dino, DEFAULT_DINO, notes, batch_size),
        judge=judge,
        character=character,
    )


def evaluate_run(
    ws: Workspace, run: str = "latest", options: EvalOptions | None = None, *, show_progress: bool = True
) -> EvalResult:
    """Draw the prompt set at every point of ``run``, score every picture, summarise each point, pick the best."""
    options = options or EvalOptions()
    found = ws.run(run)
    config = found.config()
    points = run_points(found, options.checkpoints)
    prompt_set, steps, guidance = _draw_settings(ws, options, config.base)
    folder = found.folder / "eval"

    # 1. pictures of every point x prompt x seed (cached) and their scores; with --halving only the leaders' on all seeds
    painter = CheckpointPainter(
        config, base=options.base, family=found.summary().get("family") if options.base else None,
        sampler=model_sampler(options.sampler, options.base or config.base), steps=steps, guidance=guidance,
    )  # fmt: skip
    notes: list[str] = []
    pictures = _Pictures(
        painter, PictureCache(folder / "images"), prompt_set.prompts, folder,
        lambda: make_scorer(ws, prompt_set, clip=options.clip, dino=options.dino, batch_size=options.batch_size, notes=notes),
        batch_size=options.draw_batch_size, show_progress=show_progress,
    )  # fmt: skip

    # 2. per point, the best
    summaries, best, rounds = _summarise_points(pictures, points, list(prompt_set.seeds), halving=options.halving)
    rows, thresholds, scorer = pictures.all_rows(), pictures.thresholds, pictures.scorer
    assert scorer is not None  # the first rows made it
    verdict = no_pass_note(summaries, rows, thresholds)
    metrics = EvalMetrics(
        run=found.folder.name,
        base=painter.base,
        method=config.method,
        prompt_set=str(prompt_set.source),
        prompts=[{"id": p.id, "prompt": p.text, "scored_as": p.plain, "asked": p.asked} for p in prompt_set.prompts],
        seeds=list(prompt_set.seeds),
        inference_steps=steps,
        guidance=guidance,
        encoders={"clip": scorer.clip.source if scorer.clip else None, "dino": scorer.dino.source if scorer.dino else None},
        world_character=ws.character.world or None,
        references=[str(p) for p in scorer.references.paths],
        thresholds=thresholds.to_dict(),
        notes=([verdict] if verdict else []) + notes + thresholds.notes,
        points=summaries,
        best=None if best is None else BestPoint(point=best.point, step=best.step, quality_ratio=best.quality_ratio),
        rule="highest quality ratio; ties: higher mean identity score, then the earlier step"
        + ("; successive halving over the seeds (the best of the last round)" if rounds else ""),
        rounds=rounds,
        timing=pictures.timing,
        images=[{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
    )
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder, found.folder, metrics, scorer.references.images)
    return EvalResult(folder, metrics)


def _draw_settings(ws: Workspace, options: EvalOptions, trained_on: str) -> tuple[PromptSet, int, float]:
    """The prompt set, and the steps and guidance it is drawn at: the prompt file's own, else the options', else
    (guidance) the base's recommended."""
    prompt_set = load_prompt_set(
        options.prompts or default_prompt_file(ws), token=ws.character.token, class_word=ws.character.class_word
    )
    steps = prompt_set.steps or options.steps
    guidance = prompt_set.guidance if prompt_set.guidance is not None else options.guidance
    if guidance is None:
        guidance = recommended_guidance(options.base or trained_on)
    return prompt_set, steps, guidance


def _summarise_points(
    pictures: _Pictures, points: list[EvalPoint], seeds: list[int], *, halving: bool
) -> tuple[list[PointSummary], PointSummary | None, list | None]:
    """Each point's summary over the seeds, and the best point. With ``halving`` (and several trained points) only
    the leaders are drawn on every seed; the base is always drawn on all of them. Also the halving's rounds."""

    def summaries_at(chosen: list[EvalPoint], seeds: list[int]) -> list[PointSummary]:
        rows = pictures.rows(chosen, seeds)
        return [
            summarise([r for r in rows if r["point"] == p.name], point=p.name, label=p.label, step=p.step, base=p.weights is None)
            for p in chosen
        ]

    trained = [p for p in points if p.weights is not None]
    if not (halving and len(trained) > 1):
        summaries = summaries_at(points, seeds)
        return summaries, best_point(summaries), None
    named = {p.name: p for p in trained}
    result = successive_halving([p.name for p in trained], seeds, lambda names, s: summaries_at([named[n] for n in names], s))
    return summaries_at(points[:1], seeds) + result.summaries, result.best, result.rounds


def _draw(jobs: list[Job], painter, store: PictureCache, batch_size: int, show_progress: bool) -> tuple[list[Path], int]:
    """Every job's picture (from the store where it was drawn before), with a progress bar; and how many were drawn."""
    with tqdm(total=len(jobs), desc="evaluate: draw", unit="img", disable=not show_progress) as bar:
        done = 0

        def advance(n: int) -> None:  # a disabled tqdm bar does not count, so the listener gets its own count
            nonlocal done
            done += n
            bar.update(n)
            progress.report("evaluate: draw", done, len(jobs))

        return draw_all(jobs, painter, store, advance, batch_size=batch_size)


class _Pictures:
    """The scored pictures of an evaluation: each drawn (or taken from the store) and scored once, however often a
    point is asked for (successive halving asks for a leader's first seeds again). The scorer is made after the first
    pictures are drawn, so its encoders are not in memory while the model loads."""

    def __init__(self, painter, store: PictureCache, prompts, folder: Path, make: Callable[[], Scorer], **drawing) -> None:
        self.painter, self.store, self.prompts, self.folder, self._make = painter, store, prompts, folder, make
        self.drawing = drawing
        self.scorer: Scorer | None = None
        self.thresholds = Thresholds()
        self._rows: dict[tuple[str, str, int], dict] = {}
        self.timing = {"drawn": 0, "draw_seconds": 0.0, "scored": 0, "score_seconds": 0.0}

    def rows(self, points: list[EvalPoint], seeds: list[int]) -> list[dict]:
        """One row per picture of ``points`` x prompts x ``seeds``: where it came from, its scores, whether it passes."""
        jobs = [Job(point, prompt, seed) for point in points for prompt in self.prompts for seed in seeds]
        new = [job for job in jobs if _key(job) not in self._rows]
        if new:
            started = time.perf_counter()
            paths, drawn = _draw(new, self.painter, self.store, **self.drawing)
            self._count("drawn", drawn, "draw_seconds", started)
            if self.scorer is None:
                self.scorer = self._make()
                self.thresholds = calibrate_thresholds(self.scorer)
            started = time.perf_counter()
            for point in dict.fromkeys(job.point for job in new):  # a point's pictures scored together, in job order
                mine = [(job, path) for job, path in zip(new, paths, strict=True) if job.point == point]
                images = [open_rgb(path) for _, path in mine]
                scores = self.scorer.score(images, [job.prompt.plain for job, _ in mine], [job.prompt.asked for job, _ in mine])
                for (job, path), row in zip(mine, scores, strict=True):
                    row.update(point=point.name, step=point.step, prompt=job.prompt.id, seed=job.seed)
                    row.update(file=str(path.relative_to(self.folder)), ok=self.thresholds.passes(row))
                    self._rows[_key(job)] = row
            self._count("scored", len(new), "score_seconds", started)
        return [self._rows[_key(job)] for job in jobs]

    def all_rows(self) -> list[dict]:
        return list(self._rows.values())

    def _count(self, name: str, count: int, seconds: str, started: float) -> None:
        self.timing[name] += count
        self.timing[seconds] = round(self.timing[seconds] + time.perf_counter() - started, 2)


def _key(job: Job) -> tuple[str, str, int]:
    return job.point.name, job.prompt.id, job.seed


def _write(folder: Path, run_dir: Path, metrics: EvalMetrics, references: list[Image.Image]) -> None:
    from .report import write_report

    metrics.save(folder / METRICS_FILE)
    write_report(folder, run_dir, metrics, references)


def write_metrics(ws: Workspace, run: str, metrics: EvalMetrics) -> None:
    """Store updated metrics (e.g. with human ratios) and redraw the report."""
    run_dir = ws.run_dir(run)
    _write(run_dir / "eval", run_dir, metrics, [open_rgb(p) for p in ws.training_images()])


def calibrate_thresholds(scorer: Scorer) -> Thresholds:
    """Pass marks for one picture: the judge's all-found rule, or CLIP / DINO limits from the references themselves."""
    loo: dict[str, list[float]] = {}
    caption_scores = None
    if scorer.judge is None:
        if scorer.clip is not None:
            loo["clip_i"] = leave_one_out(scorer.reference_embeddings("clip"))
            texts = scorer.clip.texts(scorer.references.captions)
            caption_scores = (scorer.reference_embeddings("clip") * texts).sum(dim=1).tolist()
        if scorer.dino is not None:
            loo["dino"] = leave_one_out(scorer.reference_embeddings("dino"))
    return calibrate(loo, caption_scores, judged=scorer.judge is not None and scorer.character is not None)


def load_metrics(ws: Workspace, run: str) -> EvalMetrics:
    path = ws.run_dir(run) / "eval" / METRICS_FILE
    if not path.is_file():
        raise CharforgeError(f"{path}: no evaluation yet; run `charforge evaluate {ws.root} --run {run}` first")
    return EvalMetrics.load(path)
