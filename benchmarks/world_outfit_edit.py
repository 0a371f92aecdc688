"""Outfits in the mini world, measured (issue 25): asking for another outfit colour by inpainting the outfit
(masked by its palette colour, or by the renderer's exact mask as the upper bound) against asking for it in a plain
prompt with no mask.

For each held-out character, scene, seed and asked colour the renderer draws the character, the judge reads what
was drawn, and two shares are counted: pictures where the judge reads the asked outfit colour, and pictures where
every other identity attribute (hair colour and style, accessory, skin) is the character's own; whether the outfit
type stayed is reported beside them. The
exact mask is where the render changes when only the outfit colour changes; the colour mask is
``charforge mask --by-colour`` with the outfit's colour (a flat drawing's palette entry) at the default tolerance.
The base is the mini world's model, prompted with the whole description (no LoRA: the comparison is mask against no
mask, not teaching).

    python benchmarks/world_outfit_edit.py [--seeds 2] [--steps 30] [--out benchmarks/results/world-outfit-edit.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from charforge import api
from charforge.generate import masks
from charforge.generate.painter import Painter
from charforge.world.attributes import HELD_OUT, OUTFIT_COLOURS, Scene, caption
from charforge.world.judge import Judge
from charforge.world.render import render

SCENES = (Scene("standing", "smiling", "white"), Scene("waving", "smiling", "blue sky"), Scene("sitting", "sad", "teal forest"))
OTHER_IDENTITY = ("hair_colour", "hair_style", "accessory", "skin")  # the "every other identity attribute"
ALSO_READ = ("outfit_type",)  # asked to stay, not counted in "identity kept": a redrawn outfit may change its shape
METHODS = ("plain prompt", "inpaint, colour mask", "inpaint, exact mask")


def asked_colours(own: str, count: int = 2) -> list[str]:
    """Outfit colours to ask for: the first ``count`` others, in the world's order starting after the own one."""
    names = list(OUTFIT_COLOURS)
    start = names.index(own)
    return [names[(start + k) % len(names)] for k in range(1, count + 1)]


def exact_mask(character, scene: Scene, seed: int) -> Image.Image:
    """Where the render changes when only the outfit colour changes: the outfit, as the renderer drew it."""
    other = next(c for c in OUTFIT_COLOURS if c != character.outfit_colour and c not in ("pink", "orange", "red"))
    a = np.asarray(render(character, scene, seed=seed), dtype=np.int16)
    b = np.asarray(render(replace(character, outfit_colour=other), scene, seed=seed), dtype=np.int16)
    return Image.fromarray((np.abs(a - b).sum(axis=2) > 24).astype(np.uint8) * 255, mode="L")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--characters", nargs="+", default=list(HELD_OUT), choices=list(HELD_OUT))
    parser.add_argument("--keep", type=Path, help="a folder to keep every drawn picture in")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/world-outfit-edit.json"))
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    judge, painter = Judge.load(), Painter()
    draw = dict(model=api.ModelChoice("world"), steps=args.steps, show_progress=False, painter=painter)
    hits = {m: {"asked outfit": [], "identity kept": [], "both": []} for m in METHODS}
    per_attribute = {m: {a: [] for a in (*OTHER_IDENTITY, *ALSO_READ)} for m in METHODS}
    ious, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.characters:
            character = HELD_OUT[name]
            for scene in SCENES:
                for seed in range(args.seeds):
                    original = render(character, scene, seed=seed)
                    source = root / f"{name}-{scene.pose}-{seed}.png"
                    original.save(source)
                    exact = masks.grow(exact_mask(character, scene, seed), 1, 0)
                    by_colour = masks.grow(masks.colour_mask(original, OUTFIT_COLOURS[character.outfit_colour]), 1, 0)
                    e, c = np.asarray(exact) > 127, np.asarray(by_colour) > 127
                    ious.append(float((e & c).sum() / max(1, (e | c).sum())))
                    for colour in asked_colours(character.outfit_colour):
                        wanted = replace(character, outfit_colour=colour)
                        prompt = [caption(wanted, scene)]
                        out = root / f"{name}-{scene.pose}-{seed}-{colour}"
                        drawn = {
                            "plain prompt": api.generate(None, prompt, seeds=[seed], out_dir=out / "plain", **draw),
                            "inpaint, colour mask": api.edit(
                                None, source, prompt, mask=by_colour, seeds=[seed], out_dir=out / "c", **draw
                            ),
                            "inpaint, exact mask": api.edit(
                                None, source, prompt, mask=exact, seeds=[seed], out_dir=out / "e", **draw
                            ),
                        }
                        for method, result in drawn.items():
                            reading = judge.read([Image.open(result.images[0]).convert("RGB")])[0].values
                            asked = reading["outfit_colour"] == colour
                            kept = all(reading[a] == getattr(character, a) for a in OTHER_IDENTITY)
                            for a in (*OTHER_IDENTITY, *ALSO_READ):
                                per_attribute[method][a].append(reading[a] == getattr(character, a))
                            if args.keep:
                                Image.open(result.images[0]).save(
                                    args.keep / f"{out.name}-{method.replace(' ', '').replace(',', '-')}.png"
                                )
                            hits[method]["asked outfit"].append(asked)
                            hits[method]["identity kept"].append(kept)
                            hits[method]["both"].append(asked and kept)
        originals = [render(c, s, seed=k) for c in map(HELD_OUT.get, args.characters) for s in SCENES for k in range(args.seeds)]
        readings = judge.read(originals)
        truths = [HELD_OUT[n] for n in args.characters for _ in SCENES for _ in range(args.seeds)]
        every = (*OTHER_IDENTITY, *ALSO_READ, "outfit_colour")
        judge_reads_renders = float(
            np.mean([all(r.values[a] == getattr(t, a) for a in every) for r, t in zip(readings, truths, strict=True)])
        )
    cases = len(hits[METHODS[0]]["both"])
    table = {m: {k: round(float(np.mean(v)), 3) for k, v in h.items()} for m, h in hits.items()}
    report = {
        "cases": cases,
        "characters": args.characters,
        "scenes": [s.to_dict() for s in SCENES],
        "seeds": args.seeds,
        "steps": args.steps,
        "shares": table,
        "each identity attribute kept": {
            m: {a: round(float(np.mean(v)), 3) for a, v in rows.items()} for m, rows in per_attribute.items()
        },
        "colour mask IoU with the exact mask (mean)": round(float(np.mean(ious)), 3),
        "judge reads the renders themselves (all identity attributes)": round(judge_reads_renders, 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(f"{'method':24} {'asked outfit':>13} {'identity kept':>14} {'both':>6}   ({cases} cases)")
    for method, row in table.items():
        print(f"{method:24} {row['asked outfit']:13.2f} {row['identity kept']:14.2f} {row['both']:6.2f}")
    print(f"colour mask IoU with the exact mask: {report['colour mask IoU with the exact mask (mean)']:.2f}; "
          f"judge reads the renders: {judge_reads_renders:.2f}; {report['seconds']} s")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
