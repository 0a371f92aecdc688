"""Cheaper evaluation (issue 27, item 4): does a faster sampler at fewer steps, or successive halving, pick the same
checkpoint as ``charforge evaluate`` at 50 steps?

    python benchmarks/cheap_evaluation.py WORKSPACE [WORKSPACE ...] [--run latest] [--steps 50,25,20,15]
        [--sampler dpm++2m] [--markdown FILE] [--json FILE]

For each run, everything goes through ``charforge evaluate`` itself (``api.evaluate``), on the workspace's default
prompt set (the mini world's six unseen poses and expressions, 4 seeds, judged) with its encoders:

- the reference: DPM++ 2M, 50 steps, the prompt set's seeds;
- the noise floor: the same 50 steps on four *other* seeds: how far two equally costly evaluations agree;
- each cheaper setting: fewer steps on the same seeds, and successive halving (``--halving``) at each step count;
- with ``--watch-seeds 1,2``: what ``train --eval-every`` draws (the set's prompts on its first 1, 2 seeds at
  ``--watch-steps``), so the watch's pick is measured against the full evaluation (``--only-watch``: nothing else).

A setting is compared with the reference by the best-checkpoint rule's order over the trained checkpoints: Spearman's
rank correlation, whether it picks the same checkpoint, and the regret (the reference's identity share of the
reference's pick minus that of the setting's pick). Cost is denoising passes (pictures x steps), which is what the
time is on any machine; wall seconds are what this machine took to draw. Pictures are cached by everything that
decides them, so the halving runs reuse the full runs' pictures (a halving evaluation on its own draws exactly those
pictures: the cache makes it cost nothing here, not differ). Rerun after training the runs, e.g. with
``charforge world demo FOLDER --character mechanic --steps 2000`` (8 checkpoints).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from charforge import api
from charforge.evaluate.evaluate import default_prompt_file
from charforge.evaluate.quality import ranking
from charforge.evaluate.results import EvalMetrics
from charforge.workspace import Workspace


def prompt_file(ws: Workspace, seeds: list[int], folder: Path) -> Path:
    """The workspace's default prompt set with other seeds."""
    spec = yaml.safe_load(default_prompt_file(ws).read_text(encoding="utf-8"))
    spec["seeds"] = seeds
    path = folder / f"prompts-{'-'.join(map(str, seeds))}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def order(metrics: EvalMetrics) -> list[str]:
    """Trained points, best first by the best-checkpoint rule (halving: the last round's order first, then the rest
    as they fell out, later rounds first)."""
    trained = [p for p in metrics.points if not p.base]
    if not metrics.rounds:
        return [p.point for p in sorted(trained, key=ranking, reverse=True)]
    placed: list[str] = []
    for round_ in reversed(metrics.rounds):
        names = [n for n in round_["points"] if n not in placed]
        placed += sorted(names, key=lambda n: ranking(metrics.point_named(n)), reverse=True)
    return placed


def spearman(a: list[str], b: list[str]) -> float:
    n = len(a)
    if n < 2:
        return 1.0
    where = {name: i for i, name in enumerate(b)}
    d2 = sum((i - where[name]) ** 2 for i, name in enumerate(a))
    return 1 - 6 * d2 / (n * (n * n - 1))


def compare(reference: EvalMetrics, setting: EvalMetrics) -> dict:
    ref_order, mine = order(reference), order(setting)
    share = {p.point: p.identity_share or 0.0 for p in reference.points}
    return {
        "spearman": round(spearman(mine, ref_order), 3),
        "same_pick": mine[0] == ref_order[0],
        "pick": mine[0],
        "regret": round(share[ref_order[0]] - share[mine[0]], 4),
    }


def evaluate_run(
    ws: Workspace, run: str, steps: list[int], sampler: str, folder: Path, *, watch=(), watch_steps=25, only_watch=False
) -> list[dict]:
    seeds = yaml.safe_load(default_prompt_file(ws).read_text(encoding="utf-8"))["seeds"]
    own = prompt_file(ws, seeds, folder)
    other = prompt_file(ws, [s + 100 for s in seeds], folder)
    rows: list[dict] = []

    def one(label: str, prompts: Path, n_steps: int, halving: bool = False) -> EvalMetrics:
        started = time.perf_counter()
        metrics = api.evaluate(
            ws,
            run=run,
            prompts=prompts,
            clip="none",
            dino="none",
            steps=n_steps,
            sampler=sampler,
            halving=halving,
            draw_batch_size=24,
            show_progress=False,
        ).metrics
        seconds = time.perf_counter() - started
        trained = [r for r in metrics.images if r["point"] != "step-000000"]  # the base is a reference row only
        rows.append(
            {
                "run": f"{ws.root.name}/{metrics.run}",
                "setting": label,
                "steps": n_steps,
                "pictures": len(trained),
                "passes": len(trained) * n_steps,
                "seconds": round(seconds, 1) if metrics.timing["drawn"] else None,
                "metrics": metrics,
            }
        )
        return metrics

    reference = one(f"{sampler} {steps[0]} steps (reference)", own, steps[0])
    for k in watch:  # what `train --eval-every` draws: the set's prompts on its first k seeds
        one(f"watch: {k} seed(s), {watch_steps} steps", prompt_file(ws, seeds[:k], folder), watch_steps)
    if not only_watch:
        one(f"{sampler} {steps[0]} steps, other seeds (noise floor)", other, steps[0])
        for n in steps:
            if n != steps[0]:
                one(f"{sampler} {n} steps", own, n)
            one(f"{sampler} {n} steps, halving", own, n, halving=True)
    for row in rows:
        row.update(compare(reference, row.pop("metrics")))
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| run | setting | pictures | denoising passes | draw s | Spearman vs reference | same pick | pick | regret |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.0f}"
        lines.append(
            f"| {r['run']} | {r['setting']} | {r['pictures']} | {r['passes']} | {seconds} | {r['spearman']:.2f} | "
            f"{'yes' if r['same_pick'] else 'no'} | {r['pick']} | {r['regret']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workspaces", nargs="+", type=Path)
    parser.add_argument("--run", default="latest")
    parser.add_argument("--steps", default="50,25,20,15", help="the reference's steps first, then cheaper ones")
    parser.add_argument("--sampler", default="dpm++2m")
    parser.add_argument("--watch-seeds", default="", help="also the --eval-every watch's pick with this many seeds, e.g. 1,2")
    parser.add_argument("--watch-steps", type=int, default=25, help="the watch's inference steps (train --eval-inference-steps)")
    parser.add_argument("--only-watch", action="store_true", help="the reference and the watch settings only")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.workspaces:
            watch = [int(k) for k in args.watch_seeds.split(",") if k]
            ws = api.open_workspace(path)
            options = {"watch": watch, "watch_steps": args.watch_steps, "only_watch": args.only_watch}
            rows += evaluate_run(ws, args.run, steps, args.sampler, Path(tmp), **options)
    table = markdown(rows)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
