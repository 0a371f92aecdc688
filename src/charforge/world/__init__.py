"""The mini world: procedural cartoon characters, a small pretrained SD-architecture model of them,
and a judge that reads attributes back, so training quality is measurable on a CPU."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
MODEL_DIR = PACKAGE_DIR / "model"  # the shipped base model (diffusers folder, safetensors)
JUDGE_FILE = PACKAGE_DIR / "judge.safetensors"
REBUILD_HINT = "rebuild it with `charforge world build` (or restore it with `git checkout`)"
# The guidance the base model is drawn at (stored with it, ``charforge.json``). SD's 7.5 is too strong for it: it pushes
# a taught character's pink hair to purple. Chosen on the base alone, on 100 validation prompts that are neither the
# demo's test prompts nor its fresh prompts (fidelity 0.59 / 0.64 / 0.65 / 0.66 / 0.64 at guidance 2 / 3 / 4 / 5 / 7.5).
RECOMMENDED_GUIDANCE = 5.0


def _register() -> None:
    """What the rest of charforge finds by name without importing the mini world."""
    from ..data.captions import register_captioner
    from ..evaluate.judging import register_judging
    from ..models.loading import register_named_model
    from .score import WorldJudging

    register_named_model("world", MODEL_DIR)  # --base world, a storyboard's `model: world`
    register_captioner("world", _scene_captioner)  # --captioner world
    register_judging(WorldJudging())  # evaluate's judge for mini-world characters and `asked:` prompts


def _scene_captioner(template: str | None, token: str, class_word: str):
    from .captioner import SceneCaptioner

    return SceneCaptioner(template or SceneCaptioner.template, token, class_word)


_register()
