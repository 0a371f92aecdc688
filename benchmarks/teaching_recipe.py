"""The teaching-recipe search of issue 27: mini-world experiments over recipes x held-out characters x training
seeds, and one table of their means and spreads beside what the base draws from each full description.

    python benchmarks/teaching_recipe.py run OUT --recipes default,backgrounds,masked --characters unicorn-girl,mechanic
        --train-seeds 0,1        # one `charforge world demo` per cell into OUT/<recipe>-<character>-s<seed>/ (resumable)
    python benchmarks/teaching_recipe.py table OUT [OUT2 ...] [--markdown FILE]
                                 # the table of every experiment folder found (any folder with a scores.json)

A row is a recipe on one character: its mean over the training seeds found, with the spread (max - min) after
+/-. "new bg" is the same test scenes on the backgrounds no reference shows (blue sky, teal forest, pink room).
Runs go one at a time: two torch jobs on 2 cores slow each other 10-20x.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

# Named recipes: ExperimentConfig fields over the defaults.
RECIPES: dict[str, dict] = {
    "default": {},  # the demo's recipe (DreamBooth-LoRA with pivotal tuning since 2026-12-03)
    "dreambooth": {"method": "dreambooth"},  # the demo's default before: the whole UNet and text encoder
    "dreambooth+masked": {"method": "dreambooth", "masked_loss": True},
    "dreambooth+backgrounds": {"method": "dreambooth", "backgrounds": 2},
    "masked": {"masked_loss": True},
    "backgrounds": {"backgrounds": 2},
    "backgrounds+masked": {"backgrounds": 2, "masked_loss": True},
    "dreambooth-lora": {"method": "dreambooth-lora"},
    "dreambooth-lora+backgrounds": {"method": "dreambooth-lora", "backgrounds": 2},
}
# Fields that say which cell an experiment is, not which recipe it used.
# The method has a column of its own, so a row says what it trained whatever the demo's default is.
NOT_RECIPE = {"character", "train_seed", "seeds", "fresh_prompts", "batch_size", "new_backgrounds", "method"}
COLUMNS = [
    ("trained", "identity", "identity"),
    ("trained", "identity_share", "share"),
    ("trained", "pose", "pose"),
    ("trained", "expression", "expr."),
    ("trained, new backgrounds", "identity", "new bg identity"),
    ("trained, new backgrounds", "identity_share", "new bg share"),
    ("trained, new backgrounds", "background", "new bg read"),
    ("base, full description", "identity", "base described identity"),
    ("base, full description", "identity_share", "base described share"),
    ("base, full description, new backgrounds", "identity_share", "base described new bg share"),
    ("trained, class prompts (prior)", "identity_share", "prior share"),
]


def recipe_label(config: dict) -> str:
    from charforge.recipes.world_experiment import ExperimentConfig

    defaults = {f.name: f.default for f in fields(ExperimentConfig)}
    changed = {k: v for k, v in config.items() if k not in NOT_RECIPE and k in defaults and v != defaults[k]}
    for name, recipe in RECIPES.items():
        if "method" not in recipe and changed == recipe:  # the method is its own column
            return name
    return ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "default"


def _value(scores: dict, group: str, key: str) -> float | None:
    s = scores.get(group)
    if s is None:
        return None
    if key in s:
        return s[key]
    return s.get("per_attribute", {}).get(key)


def collect(folders: list[Path]) -> list[dict]:
    """One row per (recipe, character): the mean and spread of each column over the training seeds found."""
    cells: dict[tuple[str, str], list[dict]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("scores.json")):
            result = json.loads(path.read_text(encoding="utf-8"))
            key = (recipe_label(result["config"]), result["config"].get("method", "dreambooth"), result["character"])
            cells.setdefault(key, []).append(result)
    rows = []
    for (recipe, method, character), results in sorted(cells.items()):
        seeds = sorted(r["config"]["train_seed"] for r in results)
        row = {"recipe": recipe, "method": method, "character": character, "seeds": seeds}
        for group, key, label in COLUMNS:
            values = [v for r in results if (v := _value(r["scores"], group, key)) is not None]
            row[label] = (sum(values) / len(values), max(values) - min(values)) if values else None
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    labels = [label for _, _, label in COLUMNS]
    head = "| recipe | method | character | training seeds | " + " | ".join(labels) + " |"
    lines = [head, "|" + "---|" * (4 + len(labels))]
    for row in rows:
        cells = []
        for label in labels:
            value = row[label]
            if value is None:
                cells.append("")
            else:
                mean, spread = value
                cells.append(f"{mean:.2f}" + (f" +/- {spread:.2f}" if len(row["seeds"]) > 1 else ""))
        cell = f"| {row['recipe']} | {row['method']} | {row['character']} | {','.join(map(str, row['seeds']))} | "
        lines.append(cell + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(out: Path, recipes: list[str], characters: list[str], train_seeds: list[int], seeds: int) -> None:
    from charforge.recipes.world_experiment import ExperimentConfig, run_cells

    cells = [
        (
            f"{recipe}-{character}-s{seed}",
            ExperimentConfig(character=character, train_seed=seed, seeds=tuple(range(seeds)), **RECIPES[recipe]),
        )
        for recipe in recipes
        for character in characters
        for seed in train_seeds
    ]
    run_cells(out, cells, log=lambda line: print(line, flush=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="run the experiments, then print the table")
    go.add_argument("out", type=Path)
    go.add_argument("--recipes", default="default", help=f"comma-separated, from: {', '.join(RECIPES)}")
    go.add_argument("--characters", default="unicorn-girl,mechanic,cat-girl")
    go.add_argument("--train-seeds", default="0,1")
    go.add_argument("--seeds", type=int, default=4, help="seeds per test prompt")
    show = commands.add_parser("table", help="print the table of experiments already run")
    show.add_argument("out", type=Path, nargs="+")
    for command in (go, show):
        command.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.command == "run":
        unknown = [r for r in args.recipes.split(",") if r not in RECIPES]
        if unknown:
            print(f"--recipes: unknown {', '.join(unknown)}; choose from {', '.join(RECIPES)}", file=sys.stderr)
            return 2
        seeds = [int(s) for s in args.train_seeds.split(",")]
        run(args.out, args.recipes.split(","), args.characters.split(","), seeds, args.seeds)
        folders = [args.out]
    else:
        folders = args.out
    text = table(collect(folders))
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
