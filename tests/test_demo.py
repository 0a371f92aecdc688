"""The quick start's main job (the mini-world experiment), reduced: it runs end to end through the
user-facing calls, teaches the character (the judge finds its attributes in poses the references
never show, far more often than in the base model's pictures of the same prompts) while the class
prompt without the token stays varied (prior preservation), writes every
score and the report, and never replaces someone else's folder."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from charforge.errors import CharforgeError
from charforge.recipes.world_experiment import ExperimentConfig, run_experiment


def test_world_demo_takes_its_training_options_and_refuses_a_bad_method_in_one_line(tmp_path, capsys):
    code, out, err = run_cli(
        "world", "demo", tmp_path / "d", "--method", "textual", "--no-train-text-encoder", "--train-batch-size", "2",
        "--train-seed", "1", "--guidance", "3", capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "--method 'textual' is unknown" in err and "Traceback" not in err + out
    assert not (tmp_path / "d").exists()  # refused before anything was made
    code, out, err = run_cli("world", "demo", tmp_path / "d", "--guidance", "-1", capsys=capsys)
    assert code == 2 and "--guidance" in err and "Traceback" not in err + out and not (tmp_path / "d").exists()
    # `charforge demo` is the same command: it takes the same options
    code, out, err = run_cli("demo", tmp_path / "d", "--guidance", "-1", "--train-seed", "1", capsys=capsys)
    assert code == 2 and "--guidance -1.0 is negative" in err and "Traceback" not in err + out and not (tmp_path / "d").exists()


@pytest.mark.slow
def test_reduced_experiment_teaches_the_character(tmp_path):
    config = ExperimentConfig(
        steps=400, num_class_images=12, checkpoint_every=400, eval_every=400, seeds=(0, 1), inference_steps=20, fresh_prompts=0
    )
    result = run_experiment(tmp_path / "demo", config, log=lambda _: None)
    saved = json.loads((tmp_path / "demo" / "scores.json").read_text())
    scores = saved["scores"]
    assert saved["training"]["watch"] == {"best_step": 400, "stopped_at_plateau": False}  # scored as it trained
    assert set(scores) == {
        "trained",
        "base, same prompts",
        "base, full description",
        "trained, new backgrounds",  # the test scenes on the backgrounds no reference shows
        "base, full description, new backgrounds",
        "trained, class prompts (prior)",
    }
    assert all(0.0 <= s["identity"] <= 1.0 and 0.0 <= s["prompt_fidelity"] <= 1.0 for s in scores.values())
    trained, base = scores["trained"], scores["base, same prompts"]
    # measured (guidance 5) share 0.61 vs 0.08; every one of the six identity attributes found more often than in the base's
    # pictures. The whole-character identity rate (all six in one picture) is 0-2 of these 12 pictures, too few
    # to assert on at this size (issue 3: identity is the open aim).
    assert trained["identity_share"] >= base["identity_share"] + 0.4, (trained, base)
    rose = [a for a, rate in trained["identity_attributes"].items() if rate > base["identity_attributes"][a]]
    assert len(rose) >= 5, (trained, base)
    assert trained["per_attribute"]["pose"] >= 0.6  # the unseen poses are still drawn
    prior = scores["trained, class prompts (prior)"]  # measured share 0.11 vs 0.61 with the token
    assert prior["identity"] < 0.2 and prior["identity_share"] <= trained["identity_share"] - 0.3, (prior, trained)
    assert result.report.is_file() and (tmp_path / "demo" / "report" / "checkpoints.png").is_file()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "drawing.png").write_bytes(b"precious")
    with pytest.raises(CharforgeError, match="is not a charforge demo"):
        run_experiment(mine, config, log=lambda _: None)
    assert (mine / "drawing.png").read_bytes() == b"precious"
