"""Each benchmark runs at its smallest size for a step or two, so a rename breaks the suite, not the next
person who measures. No timing is asserted: speed is measured by running the benchmarks on demand."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(*args: str, cwd: Path) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


@pytest.mark.slow
def test_train_step_benchmark_runs_in_both_precisions(tmp_path):
    out = _run(
        str(BENCHMARKS / "train_step.py"), "--sizes", "tiny", "--steps", "3", "--mixed-precision", "no,bf16",
        "--cache", str(tmp_path / "cache"), cwd=tmp_path,
    )  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.startswith("sd1-tiny")]
    assert [(r[2], r[3]) for r in rows] == [("fp32", "charforge"), ("bf16", "charforge")], out
    assert all(math.isfinite(float(r[4])) and float(r[4]) > 0 for r in rows), out  # a time per step after the warm-up


def test_train_step_benchmark_refuses_an_unknown_precision(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "train_step.py"), "--mixed-precision", "fp8"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "--mixed-precision fp8" in done.stderr


def test_eval_scoring_benchmark_runs(tmp_path):
    out = _run(
        str(BENCHMARKS / "eval_scoring.py"), "--images", "2", "--batch", "2", "--size", "64", "--encoders", "tiny", cwd=tmp_path
    )
    assert "ms per scored image" in out and "all (CLIP + DINO + palette)" in out


def test_teaching_recipe_table_gives_each_recipe_and_character_its_mean_and_spread(tmp_path):
    import json
    from dataclasses import asdict

    from charforge.recipes.world_experiment import ExperimentConfig

    def experiment(folder: str, share: float, **config) -> None:
        scores = {
            "trained": {"identity": 0.5, "identity_share": share, "per_attribute": {"pose": 1.0, "expression": 0.25}},
            "base, full description": {"identity": 0.0, "identity_share": 0.7, "per_attribute": {}},
        }
        character = config.get("character", "unicorn-girl")
        result = {"character": character, "config": asdict(ExperimentConfig(**config)), "scores": scores}
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "scores.json").write_text(json.dumps(result))

    experiment("a", 0.6, method="dreambooth")
    experiment("b", 0.8, train_seed=1, method="dreambooth")
    experiment("c", 0.9, masked_loss=True, character="mechanic", method="dreambooth")
    experiment("d", 0.3, method="lora")
    out = _run(str(BENCHMARKS / "teaching_recipe.py"), "table", str(tmp_path), "--markdown", str(tmp_path / "t.md"), cwd=tmp_path)
    rows = {"/".join(c.strip() for c in line.split("|")[1:4]): line for line in out.splitlines()[2:]}
    assert set(rows) == {"default/dreambooth/unicorn-girl", "masked/dreambooth/mechanic", "default/lora/unicorn-girl"}
    assert "| 0,1 |" in rows["default/dreambooth/unicorn-girl"] and "0.70 +/- 0.20" in rows["default/dreambooth/unicorn-girl"]
    assert "| 0 | 0.50 | 0.90 | 1.00 | 0.25 |" in rows["masked/dreambooth/mechanic"]
    assert "| 0 | 0.50 | 0.30 |" in rows["default/lora/unicorn-girl"]  # a method is a column, not a recipe
    assert (tmp_path / "t.md").read_text().strip() == out.strip()


def test_cheap_evaluation_compares_a_settings_checkpoint_order_with_the_reference():
    import importlib.util

    from charforge.evaluate.results import EvalMetrics, PointSummary

    spec = importlib.util.spec_from_file_location("cheap_evaluation", BENCHMARKS / "cheap_evaluation.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def metrics(shares: dict[int, float], rounds=None) -> EvalMetrics:
        points = [PointSummary(step=0, point="step-000000", base=True, quality_ratio=0.0, identity_share=0.9)]
        points += [PointSummary(step=s, point=f"s{s}", quality_ratio=0.0, identity_share=v) for s, v in shares.items()]
        fields = dict(run="r", base="b", method="m", prompt_set="p", prompts=[], seeds=[0], inference_steps=50, guidance=5.0)
        fields.update(encoders={}, references=[], thresholds={}, notes=[], best=None, rule="", timing={}, images=[])
        return EvalMetrics(points=points, rounds=rounds, **fields)

    reference = metrics({100: 0.2, 200: 0.5, 300: 0.4})
    assert bench.order(reference) == ["s200", "s300", "s100"]  # the base is not ranked
    assert bench.compare(reference, reference) == {"spearman": 1.0, "same_pick": True, "pick": "s200", "regret": 0.0}
    reversed_ = bench.compare(reference, metrics({100: 0.6, 200: 0.1, 300: 0.4}))
    assert reversed_["spearman"] == -1.0 and reversed_["pick"] == "s100" and reversed_["regret"] == pytest.approx(0.3)
    # halving: the last round's points come first, whatever their scores on fewer seeds were
    rounds = [{"seeds": [0], "points": ["s100", "s200", "s300"]}, {"seeds": [0, 1], "points": ["s300", "s200"]}]
    halved = metrics({100: 0.9, 200: 0.5, 300: 0.6}, rounds)
    assert bench.order(halved) == ["s300", "s200", "s100"]
    assert bench.compare(reference, halved)["regret"] == pytest.approx(0.1)
