"""The mini world: procedural cartoon characters, a small pretrained SD-architecture model of them,
and a judge that reads attributes back, so training quality is measurable on a CPU."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
MODEL_DIR = PACKAGE_DIR / "model"  # the shipped base model (diffusers folder, safetensors)
JUDGE_FILE = PACKAGE_DIR / "judge.safetensors"
REBUILD_HINT = "rebuild it with `charforge world build` (or restore it with `git checkout`)"
