"""An outfit from a picture, and the seed project's colour leak, measured in the mini world (issue 25).

The seed project dressed its character through an IP-Adapter fed a picture of the outfit, and found the picture's
colours leaking into the whole image. Here the picture is a render of a "donor": the held-out character wearing the
asked outfit colour, with another hair colour, in another pose on a pink-room background. The prompt describes the
character and the scene but not the outfit's colour (the picture is to give it). The mini world's model draws it
with its own IP-Adapter (``charforge world build --stage ip-adapter``) at several scales and presets, and the judge
reads each picture:

- outfit from the picture: the judge reads the donor's (asked) outfit colour;
- hair kept / leaked: it reads the character's own hair colour / the donor's;
- background kept / leaked: it reads the prompt's background / the donor's pink room;
- identity kept: hair style, skin and accessory are the character's own;
- palette distance to the donor picture (CIEDE2000, the subject's dominant colours; lower is closer to the picture).

    python benchmarks/world_ip_adapter.py [--seeds 2] [--steps 30] [--ip-adapter FILE] [--out FILE.json]
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
from charforge.evaluate.palette import image_palette, palette_distance_to
from charforge.generate.painter import Painter
from charforge.world.attributes import HAIR_COLOURS, HELD_OUT, OUTFIT_COLOURS, Scene, caption
from charforge.world.judge import Judge
from charforge.world.render import render

SCENES = (Scene("standing", "smiling", "white"), Scene("waving", "smiling", "blue sky"))
DONOR_SCENE = Scene("arms up", "surprised", "pink room")
# name -> (ip_scale, ip_preset); None: no image prompt
SETTINGS: dict[str, tuple[float | None, str | None] | None] = {
    "no image prompt": None,
    "scale 0.3": (0.3, None),
    "scale 0.6": (0.6, None),
    "full (scale 1.0)": (None, "full"),
    "style": (None, "style"),
    "layout": (None, "layout"),
    "style-and-layout": (None, "style-and-layout"),
    "outfit": (None, "outfit"),
}
KEPT = ("hair_style", "skin", "accessory")


def asked_colours(own: str, count: int = 2) -> list[str]:
    names = list(OUTFIT_COLOURS)
    start = names.index(own)
    return [names[(start + k) % len(names)] for k in range(1, count + 1)]


def donor_hair(own: str) -> str:
    names = list(HAIR_COLOURS)
    return names[(names.index(own) + 3) % len(names)]


def prompt_without_outfit_colour(character, scene: Scene) -> str:
    return caption(character, scene).replace(f" in a {character.outfit_colour} ", " in a ", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--characters", nargs="+", default=list(HELD_OUT), choices=list(HELD_OUT))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/world-ip-adapter.json"))
    parser.add_argument("--ip-adapter", default="", help="an adapter file to measure (default: the world model's own)")
    args = parser.parse_args()
    judge, painter = Judge.load(), Painter()
    draw = dict(model=api.ModelChoice("world"), steps=args.steps, show_progress=False, painter=painter)
    counts = {name: {k: [] for k in ("outfit from picture", "hair kept", "hair leaked", "background kept",
                                       "background leaked", "identity kept", "palette distance to picture")}
              for name in SETTINGS}  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.characters:
            character = HELD_OUT[name]
            for colour in asked_colours(character.outfit_colour):
                donor = replace(character, outfit_colour=colour, hair_colour=donor_hair(character.hair_colour))
                picture = render(donor, DONOR_SCENE, seed=0)
                donor_file = root / f"{name}-{colour}.png"
                picture.save(donor_file)
                donor_palette = image_palette(picture)
                for scene in SCENES:
                    prompt = [prompt_without_outfit_colour(character, scene)]
                    for label, setting in SETTINGS.items():
                        extra = {}
                        if setting is not None:
                            scale, preset = setting
                            extra = dict(image_prompt=donor_file, ip_scale=scale, ip_preset=preset, ip_adapter=args.ip_adapter)
                        out = root / f"{name}-{colour}-{scene.background}-{label.replace(' ', '_')}"
                        result = api.generate(None, prompt, seeds=list(range(args.seeds)), out_dir=out, **draw, **extra)
                        drawn = [Image.open(p).convert("RGB") for p in result.images]
                        for image, reading in zip(drawn, judge.read(drawn), strict=True):
                            got = reading.values
                            row = counts[label]
                            row["outfit from picture"].append(got["outfit_colour"] == colour)
                            row["hair kept"].append(got["hair_colour"] == character.hair_colour)
                            row["hair leaked"].append(got["hair_colour"] == donor.hair_colour)
                            row["background kept"].append(got["background"] == scene.background)
                            row["background leaked"].append(got["background"] == DONOR_SCENE.background)
                            row["identity kept"].append(all(got[k] == getattr(character, k) for k in KEPT))
                            row["palette distance to picture"].append(palette_distance_to(image, donor_palette))
    table = {label: {k: round(float(np.mean(v)), 3) for k, v in row.items()} for label, row in counts.items()}
    cases = len(counts["no image prompt"]["hair kept"])
    print(f"\n{cases} pictures per setting ({len(args.characters)} characters x 2 asked colours x {len(SCENES)} scenes x "
          f"{args.seeds} seeds, {args.steps} steps), {time.perf_counter() - started:.0f} s\n")  # fmt: skip
    columns = list(next(iter(table.values())))
    print("| setting | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for label, row in table.items():
        print(f"| {label} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cases_per_setting": cases, "steps": args.steps, "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
