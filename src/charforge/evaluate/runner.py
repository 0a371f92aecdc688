"""Drawing the prompt set at every checkpoint of a run, with one loaded base model.

The base model loads once; each checkpoint's LoRA is loaded as an adapter and removed again (for
full DreamBooth runs the checkpoint's UNet replaces the base UNet). Pictures are cached under
``eval/images/<point>/`` keyed by everything that decides them (prompt, seed, steps, guidance,
size, sampler, base, weight contents), so evaluating again after a change of metrics, thresholds or
prompts only draws what is new, and an interrupted evaluation continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..config import TrainConfig
from ..digest import folder_digest
from ..errors import CharforgeError, PicturesInterrupted
from ..generate.metadata import GenerationParams
from ..generate.painter import NOTHING, Painter, Wearing
from ..generate.picture_cache import PictureCache
from ..generate.schedulers import DEFAULT_SAMPLER, sampler_label
from ..generate.text2image import draw_batch, native_size
from ..models.loading import BaseModel
from ..run import Run, step_dir_name
from .prompts import EvalPrompt


@dataclass(frozen=True)
class EvalPoint:
    """One state of a run to evaluate: the base model (step 0), a checkpoint, or the final weights."""

    step: int
    weights: Path | None  # None: the base model without the run
    name: str  # folder name under eval/images

    @property
    def label(self) -> str:
        return "base" if self.weights is None else ("final" if self.name == "final" else f"step {self.step}")


def run_points(run: Run, steps: list[int] | None = None) -> list[EvalPoint]:
    """Step 0 (the base model), every checkpoint (or those in ``steps``), and ``final`` if no checkpoint has its step."""
    found = dict(run.checkpoints())
    if steps is not None:
        unknown = sorted(set(steps) - set(found) - {0})
        if unknown:
            have = ", ".join(str(s) for s in sorted(found)) or "none"
            raise CharforgeError(f"run {run.name} has no checkpoint at step {', '.join(map(str, unknown))} (has: {have})")
        found = {s: p for s, p in found.items() if s in steps}
    points = [EvalPoint(0, None, step_dir_name(0))]
    points += [EvalPoint(step, path, step_dir_name(step)) for step, path in sorted(found.items())]
    summary = run.summary()
    if run.final_dir.is_dir() and summary and steps is None:
        final_step = int(summary.get("steps", 0))
        if final_step not in found:
            points.append(EvalPoint(final_step, run.final_dir, "final"))
    if len(points) == 1:
        raise CharforgeError(f"run {run.name} has no checkpoints and no final result yet; train it first")
    return points


@dataclass(frozen=True)
class Job:
    point: EvalPoint
    prompt: EvalPrompt
    seed: int

    @property
    def file_name(self) -> str:
        return f"{self.prompt.id}-s{self.seed}.png"

    @property
    def picture_name(self) -> str:
        """Where the picture lies in the evaluation's picture cache: a folder per point."""
        return f"{self.point.name}/{self.file_name}"


def _batch_key(job: Job) -> tuple:
    """What the pictures of one pass of the model share: the checkpoint and the negative prompt."""
    return job.point, job.prompt.negative


class CheckpointPainter:
    """A run's base model, loaded on first use, wearing one checkpoint's weights at a time."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        base: str | None = None,
        family: str | None = None,
        sampler: str = DEFAULT_SAMPLER,
        steps: int = 50,
        guidance: float = 7.5,
    ) -> None:
        self.config = config
        self.base = base or config.base
        self.sampler = sampler
        self.steps = steps
        self.guidance = guidance
        self.painter = Painter(allow_unsafe_pickle=config.allow_unsafe_pickle, base_config=config.base_config, family=family)
        self._digests: dict[Path, str] = {}

    # -- what decides a picture (no model needed) ---------------------------------------------------
    def weights_digest(self, point: EvalPoint) -> str:
        if point.weights is None:
            return "base"
        if point.weights not in self._digests:
            self._digests[point.weights] = folder_digest(point.weights)
        return self._digests[point.weights]

    def size(self) -> int:
        return self.config.resolution or native_size(self.model.pipe)[0]

    def key(self, job: Job) -> str:
        data = [
            job.prompt.text,
            job.prompt.negative,
            job.seed,
            self.steps,
            self.guidance,
            self.config.resolution,
            self.sampler,
            self.base,
            self.weights_digest(job.point),
        ]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:20]

    # -- the model ------------------------------------------------------------------------------------
    @property
    def model(self) -> BaseModel:
        return self.painter.model(self.base)

    def use(self, point: EvalPoint) -> BaseModel:
        """The base wearing ``point``'s weights: a DreamBooth checkpoint's parts, or its LoRA."""
        if point.weights is None:
            wearing = NOTHING
        elif self.config.method == "dreambooth":
            wearing = Wearing(finetuned=point.weights)
        else:
            wearing = Wearing(loras=((point.weights, 1.0),))
        return self.painter.wear(self.base, wearing, sampler=self.sampler)

    def draw(self, jobs: list[Job]) -> list[tuple[Image.Image, GenerationParams]]:
        """Pictures of ``jobs`` (one checkpoint, one negative prompt) in one pass of the model."""
        point, negative = _batch_key(jobs[0])
        if any(_batch_key(job) != (point, negative) for job in jobs):
            raise ValueError("a batch draws one checkpoint with one negative prompt")
        model = self.use(point)
        size = self.size()
        images = draw_batch(
            model.pipe,
            [job.prompt.text for job in jobs],
            [job.seed for job in jobs],
            negative_prompt=negative,
            steps=self.steps,
            guidance=self.guidance,
            width=size,
            height=size,
        )
        return [(image, self._params(job, size)) for image, job in zip(images, jobs, strict=True)]

    def _params(self, job: Job, size: int) -> GenerationParams:
        return GenerationParams(
            prompt=job.prompt.text,
            negative_prompt=job.prompt.negative,
            steps=self.steps,
            sampler=sampler_label(self.sampler),
            cfg_scale=self.guidance,
            seed=job.seed,
            width=size,
            height=size,
            model=self.model.name,
            loras=[] if job.point.weights is None else [(job.point.label, 1.0)],
        )


def draw_all(
    jobs: list[Job], painter: CheckpointPainter, store: PictureCache, progress=None, batch_size: int = 1
) -> tuple[list[Path], int]:
    """Every job's picture (from the store, ``<point>/<prompt>-s<seed>.png``, or drawn, in job order); returns the
    paths and how many were drawn.

    Missing pictures of one checkpoint and negative prompt are drawn ``batch_size`` at a time (about 2x
    faster per picture for the mini world on a CPU); each keeps its own seed's noise.
    """
    paths: dict[int, Path] = {}
    pending: list[tuple[int, Job, str]] = []

    def flush() -> None:
        for (i, job, key), (image, params) in zip(pending, painter.draw([job for _, job, _ in pending]), strict=True):
            paths[i] = store.put(job.picture_name, key, image, params)
        if progress is not None:
            progress(len(pending))
        pending.clear()

    drawn = 0
    try:
        for i, job in enumerate(jobs):
            key = painter.key(job)
            path = store.get(job.picture_name, key)
            if path is not None:
                paths[i] = path
                if progress is not None:
                    progress(1)
                continue
            if pending and _batch_key(pending[0][1]) != _batch_key(job):
                flush()
            pending.append((i, job, key))
            drawn += 1
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
    except KeyboardInterrupt:
        # Every picture drawn so far is in the store (written atomically): evaluating again only draws the rest.
        hint = "; run the same evaluate again to draw only the missing ones"
        raise PicturesInterrupted(len(paths), len(jobs), str(store.folder), hint) from None
    return [paths[i] for i in range(len(jobs))], drawn
