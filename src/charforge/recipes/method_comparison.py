"""The thesis' method comparison in the mini world (its Tables 1 and 2), measured instead of judged by eye.

``charforge world compare FOLDER`` runs the mini-world experiment (:mod:`.world_experiment`: teach a held-out
character from six renders through ``charforge train``, draw, let the judge read) once per method x character x
training seed, each in ``FOLDER/<method>-<character>-s<seed>/``, and writes ``FOLDER/report.html``:

- Table 1, per method: the size of the weights a user keeps, the training time, and the scores on the six unseen
  poses and expressions: identity (every identity attribute in one picture), identity share, prompt fidelity and
  the quality ratio (pictures with every identity and every asked attribute: the thesis' "flawless" share), and the
  identity share on backgrounds no reference shows. "Prompt only" is the base model asked with the character's full
  description, which needs no training. The thesis' by-eye row is printed beside each method.
- Table 2: the quality ratio (and identity share) per checkpoint of each method.
- The pictures of every cell, with a link to its own report.

Cells already run are kept (a run that stopped can be started again); every method uses the same recipe otherwise
(steps, learning rate, captions, class images), so only the method differs.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from .. import atomic
from ..errors import CharforgeError
from ..workspace import Workspace
from ..world.attributes import held_out
from .world_experiment import ExperimentConfig, run_cells

# The thesis' three methods as ExperimentConfig changes. "lora" is LoRA fine-tuning on the captions alone: no prior
# preservation and no pivotal tuning of the identifier (the thesis' LoRA); "dreambooth-lora" is charforge's
# DreamBooth-LoRA (identifier, prior preservation, pivotal tuning); "dreambooth" trains the whole UNet and text encoder.
METHODS: dict[str, dict] = {
    "dreambooth": {"method": "dreambooth"},
    "lora": {"method": "lora", "prior_preservation": False, "token_embedding": False},
    "dreambooth-lora": {"method": "dreambooth-lora"},
}
# The thesis (SDXL, by eye): weight size, training time, quality.
THESIS = {
    "dreambooth": ("4 GB", "2 h", "low"),
    "lora": ("3.23 MB", "12 h", "low"),
    "dreambooth-lora": ("25 MB", "1 h", "high"),
}
PROMPT_ONLY = "prompt only (base, full description)"
SCORES = ("identity", "identity_share", "prompt_fidelity", "quality_ratio")


def cell_name(method: str, character: str, seed: int) -> str:
    return f"{method}-{character}-s{seed}"


def compare_methods(
    folder: Path,
    *,
    methods: Sequence[str] = tuple(METHODS),
    characters: Sequence[str] = ("unicorn-girl",),
    train_seeds: Sequence[int] = (0,),
    base: ExperimentConfig | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run every method on every character and training seed (see the module doc) and write the report."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise CharforgeError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    for character in characters:
        held_out(character)  # an unknown name fails now, not after the first hours of training
    base = base or ExperimentConfig(fresh_prompts=0)  # the base's ceiling on fresh prompts is the demo's, not needed here
    cells = [
        (cell_name(m, c, s), replace(base, character=c, train_seed=s, **METHODS[m]))
        for m in methods
        for c in characters
        for s in train_seeds
    ]
    folder.mkdir(parents=True, exist_ok=True)
    run_cells(folder, cells, log=log)
    return write_report(folder, read_cells(folder, [name for name, _ in cells]))


# -- the report ---------------------------------------------------------------------------------------------------
def _cell(folder: Path) -> dict:
    """A cell's scores.json, with what its run cost: training seconds and the size of the weights kept (final/)."""
    result = json.loads((folder / "scores.json").read_text(encoding="utf-8"))
    run = Workspace.open(folder / result["character"]).run("latest")
    weights = [p for p in run.final_dir.rglob("*.safetensors")] if run.final_dir.is_dir() else []
    result["weights_bytes"] = sum(p.stat().st_size for p in weights)
    result["train_seconds"] = run.summary().get("seconds")
    return result


def method_of(config: dict) -> str:
    """Which of :data:`METHODS` an experiment's config is (the first whose changes it carries)."""
    for name, change in METHODS.items():
        if all(config.get(k) == v for k, v in change.items()):
            return name
    return str(config.get("method"))


def _mean(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return sum(found) / len(found) if found else None


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _size(n: float | None) -> str:
    if n is None:
        return ""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def method_rows(cells: dict[str, dict]) -> list[dict]:
    """Table 1: one row per method (means over its cells), the prompt-only row first."""
    by_method: dict[str, list[dict]] = {}
    for result in cells.values():
        by_method.setdefault(method_of(result["config"]), []).append(result)
    described = [r["scores"]["base, full description"] for r in cells.values()]
    described_bg = [r["scores"].get("base, full description, new backgrounds") for r in cells.values()]
    rows = [
        {
            "method": PROMPT_ONLY,
            "cells": len(described),
            "weights_bytes": 0,
            "train_seconds": 0.0,
            **{k: _mean(s.get(k) for s in described) for k in SCORES},
            "new_bg_share": _mean(s.get("identity_share") for s in described_bg if s),
        }
    ]
    for method, results in by_method.items():
        trained = [r["scores"]["trained"] for r in results]
        new_bg = [r["scores"].get("trained, new backgrounds") for r in results]
        rows.append(
            {
                "method": method,
                "cells": len(results),
                "weights_bytes": _mean(r["weights_bytes"] for r in results),
                "train_seconds": _mean(r["train_seconds"] for r in results),
                **{k: _mean(s.get(k) for s in trained) for k in SCORES},
                "new_bg_share": _mean(s.get("identity_share") for s in new_bg if s),
                "prior_share": _mean(r["scores"]["trained, class prompts (prior)"].get("identity_share") for r in results),
            }
        )
    return rows


def checkpoint_rows(cells: dict[str, dict]) -> dict[str, dict[int, dict[str, float | None]]]:
    """Table 2: per method, per checkpoint step, the mean quality ratio and identity share over its cells."""
    table: dict[str, dict[int, list[dict]]] = {}
    for result in cells.values():
        steps = table.setdefault(method_of(result["config"]), {})
        for point in result["checkpoints"]:
            steps.setdefault(point["step"], []).append(point)
    return {
        method: {
            step: {k: _mean(p.get(k) for p in points) for k in ("quality_ratio", "identity_share")}
            for step, points in sorted(steps.items())
        }
        for method, steps in table.items()
    }


def read_cells(folder: Path, names: Sequence[str] | None = None) -> dict[str, dict]:
    """The cells ``names`` (default: every subfolder with a ``scores.json``), each with what its run cost."""
    if names is None:
        names = sorted(path.parent.name for path in folder.glob("*/scores.json"))
    return {name: _cell(folder / name) for name in names}


def write_report(folder: Path, cells: dict[str, dict]) -> Path:
    """``report.html`` (Tables 1 and 2, the pictures) and ``comparison.json`` from the cells."""
    names = list(cells)
    rows = method_rows(cells)
    curves = checkpoint_rows(cells)
    atomic.write_text(folder / "comparison.json", json.dumps({"methods": rows, "checkpoints": curves}, indent=1))

    num = _number

    def minutes(seconds: float | None) -> str:
        return "" if seconds is None else f"{seconds / 60:.1f} min"

    table1 = "".join(
        f"<tr><td>{html.escape(r['method'])}</td><td>{r['cells']}</td><td>{_size(r['weights_bytes'])}</td>"
        f"<td>{minutes(r['train_seconds'])}</td>"
        + "".join(f"<td>{num(r[k])}</td>" for k in SCORES)
        + f"<td>{num(r['new_bg_share'])}</td><td>{num(r.get('prior_share'))}</td>"
        + f"<td>{html.escape(' / '.join(THESIS.get(r['method'], ())))}</td></tr>"
        for r in rows
    )
    steps = sorted({step for curve in curves.values() for step in curve})
    table2 = "".join(
        f"<tr><td>{html.escape(method)}</td>"
        + "".join(
            f"<td>{num(curve[s]['quality_ratio'])} <small>({num(curve[s]['identity_share'])})</small></td>"
            if s in curve
            else "<td></td>"
            for s in steps
        )
        + "</tr>"
        for method, curve in curves.items()
    )
    pictures = "".join(
        f"<h3>{html.escape(name)}</h3><p><a href='{html.escape(name)}/report.html'>its report</a></p>"
        f"<img src='{html.escape(name)}/report/grid-0.png'>"
        for name in names
    )
    config = next(iter(cells.values()))["config"]
    shared = ("steps", "learning_rate", "train_batch_size", "num_class_images", "guidance")
    recipe = {k: v for k, v in config.items() if k in shared}
    page = f"""<!doctype html><meta charset="utf-8"><title>charforge: methods compared in the mini world</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
img{{image-rendering:pixelated;max-width:100%}}</style>
<h1>DreamBooth, LoRA and DreamBooth-LoRA in the mini world</h1>
<p>{len(cells)} experiments: characters {", ".join(sorted({c["character"] for c in cells.values()}))}, training seeds
{", ".join(sorted({str(c["config"]["train_seed"]) for c in cells.values()}))}. The same recipe for every method
(<code>{html.escape(json.dumps(recipe))}</code>); scores on six poses and expressions no reference shows, read by the
judge. Means over the cells of each method.</p>
<h2>Table 1: what each method costs and draws</h2>
<table><tr><th>method</th><th>cells</th><th>weights kept</th><th>training (this machine)</th><th>identity</th>
<th>identity share</th><th>prompt fidelity</th><th>quality ratio</th><th>share, new backgrounds</th><th>prior share</th>
<th>thesis (SDXL, by eye): size / time / quality</th></tr>{table1}</table>
<p>Quality ratio: the share of pictures in which the judge finds every identity attribute and everything asked (the
thesis' share of flawless pictures; its best was 0.35 by eye). Prior share: the character's attributes in pictures
of the plain class prompt (lower: the class stays the class).</p>
<h2>Table 2: quality ratio per checkpoint (identity share)</h2>
<table><tr><th>method</th>{"".join(f"<th>step {s}</th>" for s in steps)}</tr>{table2}</table>
<h2>Pictures (the trained model, unseen poses and expressions)</h2>{pictures}
"""
    report = folder / "report.html"
    atomic.write_text(report, page)
    return report


def describe(rows: list[dict]) -> list[str]:
    """Table 1 as text lines for the terminal."""
    lines = []
    for r in rows:
        scores = "  ".join(f"{k.replace('_', ' ')} {_number(r[k])}" for k in SCORES)
        lines.append(f"{r['method']:38s} {_size(r['weights_bytes']):>9s}  {scores}")
    return lines
