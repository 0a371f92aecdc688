"""Descriptive statistics of a character's images, as in the thesis: overview, colour breakdown, HSV.

Dominant colours come from k-means in CIELAB (perceptually uniform, so clusters match what a person
sees as one colour) over the subject's pixels only (background excluded); clusters closer than
CIEDE2000 2.3 (one just-noticeable difference) are merged. ``palette.json`` is what palette
faithfulness is later scored against.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .. import atomic
from ..plots import pyplot, save_figure
from ..workspace import Workspace
from .images import load_image
from .subject import find_subject, subject_mask

JND = 2.3  # CIEDE2000 just-noticeable difference
MAX_PIXELS = 20_000  # per k-means fit; the assignment then covers all pixels


@dataclass
class Swatch:
    hex: str
    rgb: tuple[int, int, int]
    lab: tuple[float, float, float]
    share: float


@dataclass
class ImageStats:
    name: str
    size: tuple[int, int]
    aspect: float
    format: str
    background: str
    subject_share: float
    palette: list[Swatch] = field(default_factory=list)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    from skimage.color import lab2rgb

    return np.clip(np.round(lab2rgb(lab.reshape(-1, 1, 3)).reshape(-1, 3) * 255), 0, 255).astype(int)


def _kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 40) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007); returns the centres."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = ((x[:, None, :] - np.array(centres)[None]) ** 2).sum(-1).min(1)
        if d2.sum() == 0:
            break
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())])
    centres = np.array(centres)
    for _ in range(iterations):
        labels = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        updated = np.array([x[labels == i].mean(0) if (labels == i).any() else centres[i] for i in range(len(centres))])
        if np.allclose(updated, centres):
            break
        centres = updated
    return centres


def dominant_colours(rgb: np.ndarray, k: int = 6, seed: int = 0, min_share: float = 0.01) -> list[Swatch]:
    """Dominant colours of ``rgb`` pixels (N, 3 uint8), largest share first."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    if len(rgb) == 0:
        return []
    lab = rgb2lab(rgb.reshape(-1, 1, 3).astype(np.float64) / 255.0).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    sample = lab[rng.choice(len(lab), MAX_PIXELS, replace=False)] if len(lab) > MAX_PIXELS else lab
    centres = _kmeans(sample, min(k, len(np.unique(sample, axis=0))), seed)
    labels = ((lab[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    counts = np.bincount(labels, minlength=len(centres)).astype(float)
    centres = np.array([lab[labels == i].mean(0) if counts[i] else centres[i] for i in range(len(centres))])
    # merge clusters a person would not tell apart (k larger than the real number of colours)
    order = list(np.argsort(-counts))
    merged: list[tuple[np.ndarray, float]] = []
    for i in order:
        for j, (centre, count) in enumerate(merged):
            if deltaE_ciede2000(centre, centres[i]) < JND:
                total = count + counts[i]
                merged[j] = ((centre * count + centres[i] * counts[i]) / total, total)
                break
        else:
            merged.append((centres[i], counts[i]))
    total = counts.sum()
    swatches = []
    for centre, count in sorted(merged, key=lambda m: -m[1]):
        if count / total < min_share:
            continue
        r, g, b = (int(v) for v in lab_to_rgb(centre[None])[0])
        swatches.append(
            Swatch(f"#{r:02x}{g:02x}{b:02x}", (r, g, b), tuple(round(float(v), 2) for v in centre), round(count / total, 4))
        )
    return swatches


def subject_pixels(image: Image.Image) -> tuple[np.ndarray, str, float]:
    """The subject's pixels (N, 3), the background as hex, and the subject's share of the picture."""
    subject = find_subject(image)
    array = np.asarray(image.convert("RGB"))
    background = "#{:02x}{:02x}{:02x}".format(*subject.background) if subject.flat_background else "varied"
    if not subject.flat_background:
        return array.reshape(-1, 3), background, 1.0
    mask = subject_mask(image, subject.background)
    return array[mask], background, float(mask.mean())


def hsv_histograms(rgb: np.ndarray, bins: int = 36) -> dict[str, list[float]]:
    """Hue (weighted by saturation, so greys do not pile up at red), saturation and value histograms."""
    from skimage.color import rgb2hsv

    hsv = rgb2hsv(rgb.reshape(-1, 1, 3).astype(np.float64) / 255.0).reshape(-1, 3)
    hue, _ = np.histogram(hsv[:, 0], bins=bins, range=(0, 1), weights=hsv[:, 1])
    sat, _ = np.histogram(hsv[:, 1], bins=bins // 2, range=(0, 1))
    val, _ = np.histogram(hsv[:, 2], bins=bins // 2, range=(0, 1))
    norm = lambda h: (h / max(h.sum(), 1e-9)).round(5).tolist()  # noqa: E731
    return {"hue": norm(hue), "saturation": norm(sat), "value": norm(val)}


@dataclass
class StatsReport:
    folder: Path
    images: list[ImageStats]
    overall: list[Swatch]
    html: Path
    palette_json: Path


def describe(workspace: Workspace, *, colours: int = 6, seed: int = 0) -> StatsReport:
    """Compute and write ``stats/``: palette.json, plots, and stats.html."""
    folder = workspace.root / "stats"
    folder.mkdir(parents=True, exist_ok=True)
    per_image, all_pixels, hists = [], [], {}
    originals = {p.stem: p for p in workspace.originals_dir.glob("*")} if workspace.originals_dir.is_dir() else {}
    for path in workspace.training_images():
        image = load_image(path, min_side=1)
        pixels, background, share = subject_pixels(image)
        original = originals.get(path.stem)
        fmt, size = _original_info(original) if original else ("PNG", image.size)
        stats = ImageStats(
            path.name,
            size,
            round(size[0] / size[1], 3),
            fmt,
            background,
            round(share, 4),
            dominant_colours(pixels, colours, seed),
        )
        per_image.append(stats)
        hists[path.name] = hsv_histograms(pixels)
        all_pixels.append(pixels[np.random.default_rng(seed).choice(len(pixels), min(len(pixels), MAX_PIXELS), replace=False)])
    pooled = np.concatenate(all_pixels) if all_pixels else np.zeros((0, 3), np.uint8)
    overall = dominant_colours(pooled, colours + 2, seed)
    overall_hist = hsv_histograms(pooled)
    palette_json = folder / "palette.json"
    atomic.write_text(
        palette_json,
        json.dumps(
            {"overall": [asdict(s) for s in overall], "images": {s.name: [asdict(w) for w in s.palette] for s in per_image}},
            indent=1,
        ),
    )
    atomic.write_text(
        folder / "stats.json",
        json.dumps({"images": [asdict(s) for s in per_image], "hsv": {"overall": overall_hist, "images": hists}}, indent=1),
    )
    _plot_palettes(folder / "palettes.png", overall, per_image)
    _plot_hsv(folder / "hsv.png", overall_hist)
    _plot_hue_wheel(folder / "hue-wheel.png", overall_hist["hue"])
    page = folder / "stats.html"
    atomic.write_text(page, _html(workspace, per_image, overall))
    return StatsReport(folder, per_image, overall, page, palette_json)


def _original_info(path: Path) -> tuple[str, tuple[int, int]]:
    try:
        with Image.open(path) as image:
            from PIL import ImageOps

            return image.format or path.suffix.lstrip(".").upper(), ImageOps.exif_transpose(image).size
    except OSError:
        return path.suffix.lstrip(".").upper(), (0, 0)


def _plot_palettes(path: Path, overall: list[Swatch], images: list[ImageStats]) -> None:
    plt = pyplot()
    rows = [("all images", overall)] + [(s.name, s.palette) for s in images]
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 0.7 * len(rows) + 0.4), squeeze=False)
    for ax, (label, swatches) in zip(axes[:, 0], rows, strict=True):
        left = 0.0
        for s in swatches:
            ax.barh(0, s.share, left=left, color=s.hex, edgecolor="white")
            if s.share > 0.06:
                light = sum(s.rgb) > 380
                ax.text(
                    left + s.share / 2,
                    0,
                    f"{s.hex}\n{s.share:.0%}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if light else "white",
                )
            left += s.share
        ax.set_xlim(0, max(left, 1e-6))
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("dominant colours (background excluded)")
    save_figure(fig, path, tight=True)


def _plot_hsv(path: Path, hist: dict[str, list[float]]) -> None:
    import colorsys

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
    hues = np.linspace(0, 1, len(hist["hue"]), endpoint=False)
    axes[0].bar(hues, hist["hue"], width=1 / len(hues), align="edge", color=[colorsys.hsv_to_rgb(h, 0.9, 0.9) for h in hues])
    for ax, key in zip(axes[1:], ("saturation", "value"), strict=True):
        edges = np.linspace(0, 1, len(hist[key]), endpoint=False)
        ax.bar(edges, hist[key], width=1 / len(edges), align="edge", color="grey")
    for ax, title in zip(axes, ("hue (saturation-weighted)", "saturation", "value"), strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, 1)
    save_figure(fig, path, tight=True)


def _plot_hue_wheel(path: Path, hue: list[float]) -> None:
    import colorsys

    plt = pyplot()
    fig = plt.figure(figsize=(4, 4))
    ax = fig.add_subplot(projection="polar")
    angles = np.linspace(0, 2 * np.pi, len(hue), endpoint=False)
    ax.bar(
        angles,
        hue,
        width=2 * np.pi / len(hue),
        align="edge",
        color=[colorsys.hsv_to_rgb(a / (2 * np.pi), 0.9, 0.9) for a in angles],
    )
    ax.set_yticklabels([])
    ax.set_title("hue wheel")
    save_figure(fig, path, tight=True)


def _html(workspace: Workspace, images: list[ImageStats], overall: list[Swatch]) -> str:
    def swatches(items: list[Swatch]) -> str:
        return "".join(
            f'<span class="sw" style="background:{s.hex};flex:{s.share}" title="{s.hex} {s.share:.1%}">'
            f"{s.hex} {s.share:.0%}</span>"
            for s in items
        )

    rows = "".join(
        f"<tr><td><img src='../images/{html.escape(s.name)}'></td><td>{html.escape(s.name)}</td><td>{s.size[0]}x{s.size[1]}</td>"
        f"<td>{s.aspect}</td><td>{s.format}</td><td>{s.background}</td><td>{s.subject_share:.0%}</td>"
        f"<td><div class='strip'>{swatches(s.palette)}</div></td></tr>"
        for s in images
    )
    c = workspace.character
    return f"""<!doctype html><meta charset="utf-8"><title>{html.escape(c.token)} — image statistics</title>
<style>body{{font-family:sans-serif;margin:2em}} img{{max-width:96px}} td{{padding:4px 8px;border-bottom:1px solid #ddd}}
.strip{{display:flex;width:420px;height:28px}}
.sw{{font-size:10px;color:#fff;text-shadow:0 0 2px #000;overflow:hidden;padding:2px}}</style>
<h1>{html.escape(c.token)} ({html.escape(c.class_word)}): {len(images)} image(s)</h1>
<h2>Palette of the whole set</h2><div class="strip" style="width:800px;height:40px">{swatches(overall)}</div>
<img src="palettes.png" style="max-width:900px"><h2>Hue, saturation, value</h2>
<img src="hsv.png" style="max-width:900px"><img src="hue-wheel.png" style="max-width:320px">
<h2>Images</h2><table><tr><th></th><th>file</th><th>original size</th><th>aspect</th><th>format</th><th>background</th>
<th>subject area</th><th>dominant colours</th></tr>{rows}</table>
<p>Colours: k-means in CIELAB over subject pixels (background excluded), clusters within CIEDE2000 {JND} merged.
Data: <a href="palette.json">palette.json</a>, <a href="stats.json">stats.json</a>.</p>
"""
