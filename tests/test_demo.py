"""The quick start's main job (the mini-world experiment), reduced: teaching a held-out character
raises its identity rate well above the untrained model's, and other people's folders are safe."""

from __future__ import annotations

import json

import pytest

from charforge.errors import CharforgeError
from charforge.world.experiment import ExperimentConfig, run_experiment

pytestmark = pytest.mark.slow


def test_reduced_experiment_teaches_the_character(tmp_path):
    config = ExperimentConfig(steps=400, num_class_images=8, checkpoint_every=400, seeds=(0, 1), inference_steps=20, fresh_prompts=0)
    result = run_experiment(tmp_path / "demo", config, log=lambda _: None)
    scores = json.loads((tmp_path / "demo" / "scores.json").read_text())["scores"]
    trained, base = scores["trained"]["identity"], scores["base, same prompts"]["identity"]
    assert base <= 0.1 and trained >= base + 0.4, scores
    assert result.report.is_file() and (tmp_path / "demo" / "report" / "checkpoints.png").is_file()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "drawing.png").write_bytes(b"precious")
    with pytest.raises(CharforgeError, match="is not a charforge demo"):
        run_experiment(mine, config, log=lambda _: None)
    assert (mine / "drawing.png").read_bytes() == b"precious"
