"""The evaluation report: ``report.html`` with score curves over steps, the loss curve, one image
grid per checkpoint, and an animated GIF of one prompt across training (the thesis made those by
hand). Every file is written atomically; images are referenced, not embedded, so the page stays small.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .. import atomic
from ..generate.sheet import contact_sheet
from ..plots import pyplot, save_figure
from .results import EvalMetrics, PointSummary
from .scores import open_rgb

CURVES = {
    "quality_ratio": "quality ratio",
    "identity": "identity (judge)",
    "identity_share": "identity attributes (judge)",
    "fidelity": "prompt fidelity (judge)",
    "clip_i": "CLIP-I",
    "dino": "DINO",
    "clip_t": "CLIP-T",
    "human_ratio": "human quality ratio",
}


def plot_scores(points: list[PointSummary], path: Path) -> None:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100)
    steps = [p.step for p in points]
    for key, label in CURVES.items():
        values = [p.value(key) for p in points]
        if any(v is not None for v in values):
            ax.plot(steps, [float("nan") if v is None else v for v in values], marker="o", label=label)
    ax.set_xlabel("training step")
    ax.set_title("scores (higher is better)")
    if ax.lines:
        ax.legend(fontsize=7)
    ax2.plot(steps, [float("nan") if p.palette is None else p.palette for p in points], marker="o", color="tab:brown")
    ax2.set_xlabel("training step")
    ax2.set_title("palette distance, CIEDE2000 (lower is closer)")
    fig.tight_layout()
    save_figure(fig, path)


def progress_gif(frames: list[tuple[str, Image.Image]], path: Path, size: int = 256, ms: int = 700) -> None:
    """One picture per checkpoint, labelled with its step, looping."""
    font = ImageFont.load_default()
    out = []
    for label, image in frames:
        frame = Image.new("RGB", (size, size + 18), "white")
        frame.paste(
            image.resize((size, size), Image.Resampling.NEAREST if image.width < size // 2 else Image.Resampling.LANCZOS), (0, 18)
        )
        ImageDraw.Draw(frame).text((4, 3), label, fill="black", font=font)
        out.append(frame)
    with atomic.atomic_path(path) as tmp:
        out[0].save(tmp, format="GIF", save_all=True, append_images=out[1:], duration=ms, loop=0)


def write_report(folder: Path, run_dir: Path, metrics: EvalMetrics, references: list[Image.Image]) -> Path:
    assets = folder / "report"
    assets.mkdir(parents=True, exist_ok=True)
    points, images, seeds = metrics.points, metrics.images, metrics.seeds
    current = {f"grid-{p.point}.png" for p in points}
    for stale in assets.glob("grid-*.png"):  # grids of points this evaluation did not include
        if stale.name not in current:
            stale.unlink()
    with atomic.atomic_path(assets / "references.png") as tmp:
        contact_sheet(references, columns=min(len(references), 8), cell=128).save(tmp, format="PNG")
    order = {prompt["id"]: i for i, prompt in enumerate(metrics.prompts)}
    for point in points:  # a row per prompt, a column per seed (successive halving adds a leader's seeds in rounds)
        mine = sorted((r for r in images if r["point"] == point.point), key=lambda r: (order.get(r["prompt"], 0), r["seed"]))
        labels = [f"{r['prompt']} s{r['seed']}" + ("" if r.get("ok") is None else (" ok" if r["ok"] else " x")) for r in mine]
        sheet = contact_sheet([open_rgb(folder / r["file"]) for r in mine], labels, columns=len(seeds) * 2, cell=128)
        with atomic.atomic_path(assets / f"grid-{point.point}.png") as tmp:
            sheet.save(tmp, format="PNG")
    plot_scores(points, assets / "scores.png")
    first = metrics.prompts[0]["id"]
    frames = [
        (p.label, open_rgb(folder / r["file"]))
        for p in points
        for r in images
        if r["point"] == p.point and r["prompt"] == first and r["seed"] == seeds[0]
    ]
    progress_gif(frames, assets / "progress.gif")
    has_loss = (run_dir / "loss.png").is_file()
    if has_loss:
        shutil.copyfile(run_dir / "loss.png", assets / "loss.png")
    atomic.write_text(folder / "report.html", _page(metrics, has_loss))
    return folder / "report.html"


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))


def _page(metrics: EvalMetrics, has_loss: bool) -> str:
    columns = metrics.columns()
    best = metrics.best.point if metrics.best else None
    head = "".join(f"<th>{html.escape(CURVES.get(c, c))}</th>" for c in columns)
    rows = "".join(
        f"<tr{' class=best' if p.point == best else ''}><td>{html.escape(p.label)}</td><td>{p.images}</td>"
        + "".join(f"<td>{_cell(p.value(c))}</td>" for c in columns)
        + "</tr>"
        for p in metrics.points
    )
    thresholds = metrics.thresholds
    limits = ", ".join(f"{k} &ge; {v:.3f}" for k, v in thresholds["values"].items()) or html.escape(thresholds["rule"])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in metrics.notes)
    prompts = "".join(f"<li><code>{html.escape(p['prompt'])}</code></li>" for p in metrics.prompts)
    grids = "".join(
        f"<h3>{html.escape(p.label)}</h3><img src='report/grid-{p.point}.png' alt='{html.escape(p.label)}'>"
        for p in metrics.points
    )
    best_text = "none (no trained checkpoint)" if not best else f"{best} (quality ratio {_cell(metrics.best.quality_ratio)})"
    loss = "<h2>Loss</h2><img src='report/loss.png' alt='loss curve'>" if has_loss else ""
    return f"""<!doctype html><meta charset="utf-8"><title>charforge evaluation: {html.escape(metrics.run)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
tr.best{{background:#e7f7e7;font-weight:bold}}img{{max-width:100%}}</style>
<h1>Evaluation of run {html.escape(metrics.run)}</h1>
<p>Base <code>{html.escape(str(metrics.base))}</code>, method {html.escape(metrics.method)};
{len(metrics.prompts)} prompts &times; {len(metrics.seeds)} seeds,
{metrics.inference_steps} steps, guidance {metrics.guidance}.</p>
<p><b>Best checkpoint: {html.escape(best_text)}</b> &mdash; rule: {html.escape(metrics.rule)}.</p>
<table><tr><th>point</th><th>images</th>{head}</tr>{rows}</table>
<p>An image passes when {limits} ({html.escape(thresholds["rule"])}).</p><ul>{notes}</ul>
<h2>Scores over training</h2><img src="report/scores.png" alt="scores over steps">
{loss}
<h2>One prompt across training</h2><img src="report/progress.gif" alt="one prompt across checkpoints">
<h2>References</h2><img src="report/references.png" alt="references">
<h2>Prompts</h2><ul>{prompts}</ul>
<h2>Images</h2>{grids}
"""
