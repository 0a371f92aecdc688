"""A queue of long jobs (train, resume, evaluate, generate, caption, comic) run one at a time.

The web UI puts every long step here rather than running it inside a browser request: a job outlives the page
that started it (reload the page and it is still there, with its progress), and the queue outlives the
process, because each job is a JSON file in ``<root>/.charforge/jobs/`` written atomically on every change.
When ``charforge ui`` starts again, jobs still queued run; a job that was running when the process died is
marked ``interrupted`` (a training run resumes from its last checkpoint with the ``resume`` job, as on the CLI).

One worker thread runs the jobs in order: diffusion models on a CPU or one GPU gain nothing from running two at
once. A run can be queued once: a second ``train`` or ``resume`` of the same run while one is queued or running
is refused, so two tabs cannot start the same run twice. Every job calls :mod:`charforge.api` and nothing else,
so what the queue does is what the CLI does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import api, atomic, progress
from ..errors import CharforgeError, PicturesInterrupted, TrainingInterrupted
from ..generate.painter import Painter
from ..train.loop import TrainControl

log = logging.getLogger(__name__)

JOBS_DIR = Path(".charforge") / "jobs"
ACTIVE = ("queued", "running")
DONE = ("done", "failed", "cancelled", "stopped", "interrupted")
RUN_KINDS = ("train", "resume")  # jobs that write into a run (one at a time per run)


@dataclass
class Job:
    id: str
    kind: str
    workspace: str  # folder of the character workspace ("" for a comic)
    options: dict[str, Any]
    run: str = ""  # the run a train / resume / evaluate job works on
    state: str = "queued"  # queued, running, done, failed, cancelled, stopped (training: checkpoint written), interrupted
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    done: int = 0  # progress: units of `what` finished out of `total`
    total: int = 0
    what: str = ""
    error: str = ""  # one line
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        where = Path(self.workspace).name if self.workspace else Path(self.options.get("story", "")).name
        return f"{self.kind} {where}{' / ' + self.run if self.run else ''}"


class Cancelling(progress.Cancelled):
    pass


class JobQueue:
    """Jobs of one UI root folder; ``start()`` runs them in a background thread."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folder = self.root / JOBS_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._control: TrainControl | None = None  # of the running training job
        self._cancel_running = False
        self._thread: threading.Thread | None = None
        self._painter: Painter | None = None  # one base loaded once for every generate job
        self._jobs: dict[str, Job] = {}
        for path in sorted(self.folder.glob("*.json")):
            try:
                job = Job(**json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, TypeError) as exc:
                log.warning("%s: not a job file (%s); left alone", path, exc)
                continue
            if job.state == "running":  # the process stopped while it ran
                job.state, job.finished = "interrupted", time.time()
                job.error = "charforge ui stopped while this job ran" + (
                    "; resume the run to continue from its last checkpoint" if job.kind in RUN_KINDS else ""
                )
                self._save(job)
            self._jobs[job.id] = job

    # -- what the UI asks ------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created)

    def get(self, job_id: str) -> Job:
        with self._lock:
            if job_id not in self._jobs:
                raise CharforgeError(f"no job {job_id!r}")
            return self._jobs[job_id]

    def running(self) -> Job | None:
        return next((j for j in self.jobs() if j.state == "running"), None)

    def submit(self, kind: str, workspace: str | Path = "", *, run: str = "", **options: Any) -> Job:
        """Queue a job; a train job without ``run`` gets the workspace's next run name now, so it is known at once."""
        if kind not in RUNNERS:
            raise CharforgeError(f"unknown job kind {kind!r}; choose from: {', '.join(RUNNERS)}")
        workspace = str(Path(workspace).resolve()) if workspace else ""
        with self._lock:
            if kind == "train":
                ws = api.open_workspace(workspace)
                taken = {j.run for j in self._jobs.values() if j.workspace == workspace and j.kind == "train"}
                run = run or _next_free(ws.next_run_name(), taken | set(ws.run_names()))
                if (ws.runs_dir / run).exists() and not options.get("overwrite"):
                    raise CharforgeError(f"run {run!r} already exists in {ws.runs_dir}; resume it or choose another name")
            if kind in RUN_KINDS:
                for other in self._jobs.values():
                    if other.state in ACTIVE and other.kind in RUN_KINDS and other.workspace == workspace and other.run == run:
                        raise CharforgeError(f"run {run!r} is already {other.state} (job {other.id}); wait for it or stop it")
            job = Job(uuid.uuid4().hex[:12], kind, workspace, options, run=run)
            self._jobs[job.id] = job
            self._save(job)
        self._wake.set()
        return job

    def cancel(self, job_id: str) -> Job:
        """A queued job is dropped; a running training job checkpoints and stops; another running job stops
        after the picture it is drawing."""
        with self._lock:
            job = self._jobs[job_id]
            if job.state == "queued":
                job.state, job.finished = "cancelled", time.time()
                self._save(job)
            elif job.state == "running":
                if self._control is not None:
                    self._control.requested = True
                else:
                    self._cancel_running = True
            return job

    def request(self, job_id: str, what: str) -> None:
        """``save`` a checkpoint now or ``sample`` a validation grid now, in the running training job."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != "running" or self._control is None:
                raise CharforgeError("no training job is running")
            if what == "save":
                self._control.save_requested = True
            elif what == "sample":
                self._control.sample_requested = True
            else:
                raise CharforgeError(f"unknown request {what!r}")

    # -- the worker ------------------------------------------------------------------------------
    def start(self) -> JobQueue:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="charforge-jobs", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, job_id: str, timeout: float = 600.0) -> Job:
        """Block until the job has ended (for tests and scripts)."""
        deadline = time.time() + timeout
        while self.get(job_id).state in ACTIVE:
            if time.time() > deadline:
                raise TimeoutError(f"job {job_id} still {self.get(job_id).state} after {timeout:.0f} s")
            time.sleep(0.2)
        return self.get(job_id)

    def _next(self) -> Job | None:
        with self._lock:
            queued = [j for j in self._jobs.values() if j.state == "queued"]
            if not queued:
                return None
            job = min(queued, key=lambda j: j.created)
            job.state, job.started = "running", time.time()
            self._control = TrainControl() if job.kind in RUN_KINDS else None
            self._cancel_running = False
            self._save(job)
            return job

    def _work(self) -> None:
        while not self._closing:
            job = self._next()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        last_write = [0.0]

        def listener(what: str, done: int, total: int) -> None:
            job.what, job.done, job.total = what, done, total
            if time.time() - last_write[0] > 1.0:  # progress reaches the file about once a second
                last_write[0] = time.time()
                self._save(job)
            if self._cancel_running:
                raise Cancelling()

        try:
            with progress.listen(listener):
                job.result = RUNNERS[job.kind](self, job)
            job.state = "done"
        except TrainingInterrupted as stopped:
            job.state, job.error = "stopped", str(stopped)
        except (Cancelling, PicturesInterrupted):
            job.state, job.error = "cancelled", "cancelled; the pictures drawn until then are kept"
        except CharforgeError as exc:
            job.state, job.error = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except Exception as exc:  # a crash in a job must not stop the queue; its traceback goes to the job's log
            job.state, job.error = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            (self.folder / f"{job.id}.log").write_text(traceback.format_exc(), encoding="utf-8")
        with self._lock:
            job.finished = time.time()
            self._control = None
            self._save(job)

    def _save(self, job: Job) -> None:
        atomic.write_text(self.folder / f"{job.id}.json", json.dumps(asdict(job), indent=1))

    def painter(self) -> Painter:
        if self._painter is None:
            self._painter = Painter()
        return self._painter


def _next_free(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, _, number = name.rpartition("-")
    n = int(number) if number.isdigit() else 1
    while f"{stem}-{n:03d}" in taken:
        n += 1
    return f"{stem}-{n:03d}"


# -- what each kind of job calls ---------------------------------------------------------------------
def _train(queue: JobQueue, job: Job) -> dict:
    result = api.train(job.workspace, run=job.run, control=queue._control, show_progress=False, **job.options)
    return {"run": result.run_dir.name, "final": str(result.final_dir), "steps": result.steps}


def _resume(queue: JobQueue, job: Job) -> dict:
    result = api.resume(job.workspace, run=job.run or "latest", control=queue._control, show_progress=False, **job.options)
    return {"run": result.run_dir.name, "final": str(result.final_dir), "steps": result.steps}


def _evaluate(queue: JobQueue, job: Job) -> dict:
    result = api.evaluate(job.workspace, run=job.run or "latest", show_progress=False, **job.options)
    return {"report": str(result.report), "best": result.best.model_dump() if result.best else None}


def _generate(queue: JobQueue, job: Job) -> dict:
    options = dict(job.options)
    prompts = options.pop("prompts")
    choice = {name: options.pop(name) for name in ("base", "run", "use_run", "loras") if name in options}
    choice["loras"] = tuple(api.LoraSpec.parse(text) for text in choice.get("loras") or ())
    result = api.generate(
        job.workspace or None,
        prompts,
        model=api.ModelChoice(**choice),
        painter=queue.painter(),
        show_progress=False,
        **options,
    )
    return {"images": [str(p) for p in result.images], "folder": str(result.folder)}


def _caption(queue: JobQueue, job: Job) -> dict:
    report = api.caption(job.workspace, **job.options)
    return {"written": len(report.written), "kept": len(report.kept)}


def _comic(queue: JobQueue, job: Job) -> dict:
    options = dict(job.options)
    result = api.comic(options.pop("story"), show_progress=False, **options)
    return {"pages": [str(p) for p in result.pages], "pdf": str(result.pdf), "drawn": result.drawn, "cached": result.cached}


RUNNERS: dict[str, Callable[[JobQueue, Job], dict]] = {
    "train": _train,
    "resume": _resume,
    "evaluate": _evaluate,
    "generate": _generate,
    "caption": _caption,
    "comic": _comic,
}
