"""``charforge sweep``: train a grid of learning rates x steps (x LoRA ranks), evaluate each run, and
compare them in one report (overlaid loss curves, as the thesis' Figure 16; scores per run; the winner).

Resumable at every level: a finished run (``final/`` present) is skipped, an interrupted one resumes
from its newest checkpoint, and evaluation re-uses every picture already drawn. Interrupting a sweep
(Ctrl-C) and running the same command again continues where it stopped.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import api, atomic
from ..config import build_train_config
from ..errors import CharforgeError
from ..evaluate.evaluate import evaluate_run
from ..evaluate.options import EvalOptions
from ..evaluate.quality import ranking
from ..evaluate.results import PointSummary
from ..plots import pyplot, save_figure
from ..run import Run
from ..train.metrics import moving_average, read_loss
from ..workspace import Workspace


@dataclass(frozen=True)
class SweepRun:
    learning_rate: float
    steps: int
    rank: int | None

    def name(self, sweep: str) -> str:
        return f"{sweep}-lr{self.learning_rate:g}-s{self.steps}" + (f"-r{self.rank}" if self.rank else "")

    def overrides(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "max_train_steps": self.steps, "rank": self.rank}


@dataclass
class SweepResult:
    folder: Path
    rows: list[dict] = field(default_factory=list)
    winner: dict | None = None

    @property
    def report(self) -> Path:
        return self.folder / "report.html"


def grid(learning_rates: list[float], steps: list[int], ranks: list[int] | None = None) -> list[SweepRun]:
    if not learning_rates or not steps:
        raise CharforgeError("a sweep needs at least one --lr and one --steps value")
    return [SweepRun(lr, s, r) for lr, s, r in itertools.product(learning_rates, steps, ranks or [None])]


def _state(ws: Workspace, name: str) -> str:
    """'done', 'resume' (has a checkpoint), 'restart' (a folder without any) or 'new'."""
    run = Run(ws.runs_dir / name)
    if run.final_dir.is_dir() and run.summary():
        return "done"
    if run.checkpoints():
        return "resume"
    return "restart" if run.folder.exists() else "new"


def run_sweep(
    ws: Workspace,
    runs: list[SweepRun],
    *,
    name: str = "sweep",
    train_options: dict[str, Any] | None = None,
    config_file: str | Path | None = None,
    preset: str | None = None,
    eval_options: EvalOptions | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> SweepResult:
    def run_options(run: SweepRun) -> dict[str, Any]:
        return {**(train_options or {}), **{k: v for k, v in run.overrides().items() if v is not None}}

    for run in runs:  # every run's settings are checked before anything is made (no empty sweep folder on a typo)
        if _state(ws, run.name(name)) in ("new", "restart"):
            build_train_config(config_file=config_file, preset=preset, overrides=run_options(run))
    folder = ws.root / "sweeps" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "runs": [r.__dict__ | {"name": r.name(name)} for r in runs],
        "train_options": train_options or {},
        "config_file": str(config_file) if config_file else None,
        "preset": preset,
    }
    atomic.write_text(folder / "sweep.json", json.dumps(spec, indent=1, default=str))
    for i, run in enumerate(runs, 1):
        run_name = run.name(name)
        state = _state(ws, run_name)
        log(f"[{i}/{len(runs)}] {run_name}: {'finished, skipped' if state == 'done' else state}")
        if state == "resume":
            api.resume(ws, run=run_name, show_progress=show_progress)
        elif state in ("new", "restart"):
            options = run_options(run)
            api.train(
                ws,
                run=run_name,
                overwrite=state == "restart",
                config_file=config_file,
                preset=preset,
                show_progress=show_progress,
                **options,
            )
    rows = []
    for run in runs:
        run_name = run.name(name)
        metrics = evaluate_run(ws, run_name, eval_options, show_progress=show_progress).metrics
        best = metrics.best_summary
        rows.append({"run": run_name, **run.__dict__, "best": best.model_dump() if best else None, "notes": metrics.notes})
    scored = [r for r in rows if r["best"]]
    leader = max(scored, key=lambda r: ranking(PointSummary(**r["best"])), default=None)
    winner = {**leader["best"], "run": leader["run"]} if leader else None
    result = SweepResult(folder, rows, winner)
    _write_report(ws, result, name)
    atomic.write_text(folder / "results.json", json.dumps({"rows": rows, "winner": winner}, indent=1))
    return result


def _plot_losses(ws: Workspace, rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for row in rows:
        steps, losses = read_loss(ws.runs_dir / row["run"])
        if steps:
            x, y, _ = moving_average(steps, losses)
            ax.plot(
                x,
                y,
                lw=1.4,
                label=f"lr {row['learning_rate']:g}, {row['steps']} steps" + (f", rank {row['rank']}" if row["rank"] else ""),
            )
    ax.set_xlabel("step")
    ax.set_ylabel("loss (moving average)")
    ax.set_title("training loss per run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _write_report(ws: Workspace, result: SweepResult, name: str) -> None:
    _plot_losses(ws, result.rows, result.folder / "loss.png")
    keys = [
        k
        for k in ("quality_ratio", "identity", "identity_share", "clip_i", "dino", "clip_t", "palette")
        if any(r["best"] and r["best"].get(k) is not None for r in result.rows)
    ]

    def cell(value: Any) -> str:
        return "" if value is None else (f"{value:.3f}" if isinstance(value, float) else html.escape(str(value)))

    winner = result.winner["run"] if result.winner else None
    body = "".join(
        f"<tr{' class=best' if r['run'] == winner else ''}><td><a href='../../runs/{html.escape(r['run'])}/eval/report.html'>"
        f"{html.escape(r['run'])}</a></td><td>{r['learning_rate']:g}</td><td>{r['steps']}</td><td>{cell(r['rank'])}</td>"
        f"<td>{cell(r['best'] and r['best']['step'])}</td>"
        + "".join(f"<td>{cell(r['best'] and r['best'].get(k))}</td>" for k in keys)
        + "</tr>"
        for r in result.rows
    )
    head = "".join(f"<th>{k}</th>" for k in keys)
    won = "none" if not result.winner else f"{winner} at step {result.winner['step']}"
    page = f"""<!doctype html><meta charset="utf-8"><title>charforge sweep {html.escape(name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
tr.best{{background:#e7f7e7;font-weight:bold}}img{{max-width:100%}}</style>
<h1>Sweep {html.escape(name)} ({len(result.rows)} runs)</h1>
<p><b>Winner: {html.escape(won)}</b> (each run's best checkpoint; highest quality ratio, then identity, then fewer steps).</p>
<table><tr><th>run</th><th>lr</th><th>steps</th><th>rank</th><th>best step</th>{head}</tr>{body}</table>
<h2>Loss curves</h2><img src="loss.png" alt="loss curves overlaid">
"""
    atomic.write_text(result.folder / "report.html", page)


def sweep(
    workspace: str | Path | Workspace,
    *,
    learning_rates: list[float],
    steps: list[int],
    ranks: list[int] | None = None,
    name: str = "sweep",
    config_file: str | Path | None = None,
    preset: str | None = None,
    eval_options: dict[str, Any] | None = None,
    show_progress: bool = True,
    **train_options: Any,
) -> SweepResult:
    """Train and evaluate every (learning rate, steps, rank) combination; resumable."""
    return run_sweep(
        api.open_workspace(workspace),
        grid(learning_rates, steps, ranks),
        name=name,
        train_options=train_options,
        config_file=config_file,
        preset=preset,
        eval_options=EvalOptions.build(**(eval_options or {})),
        show_progress=show_progress,
    )
