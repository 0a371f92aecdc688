"""`charforge world compare`: the thesis' Tables 1 and 2 from the mini-world experiments, and its bad input.

The experiments themselves are the demo's (tests/test_demo.py runs a reduced one); here cells with known scores
check what the report makes of them."""

from __future__ import annotations

import json
from dataclasses import asdict

from conftest import run_cli

from charforge import api
from charforge.recipes.method_comparison import METHODS, method_rows, read_cells, write_report
from charforge.recipes.world_experiment import ExperimentConfig


def _cell(folder, method: str, share: float, quality: float, weights: int, seconds: float, seed: int = 0) -> str:
    name = f"{method}-unicorn-girl-s{seed}"
    cell = folder / name
    ws = api.init(cell / "unicorn-girl", token="sks", class_word="girl")
    final = ws.runs_dir / "run-001" / "final"
    final.mkdir(parents=True)
    (final / "weights.safetensors").write_bytes(b"0" * weights)
    (final / "sample.png").write_bytes(b"0" * 999)  # not weights
    (ws.runs_dir / "run-001" / "run.json").write_text(json.dumps({"seconds": seconds}))
    group = {"identity": quality, "identity_share": share, "prompt_fidelity": 0.9, "quality_ratio": quality}
    scores = {
        "trained": group,
        "trained, new backgrounds": {**group, "identity_share": share / 2},
        "base, full description": {"identity": 0.1, "identity_share": 0.7, "prompt_fidelity": 0.95, "quality_ratio": 0.05},
        "trained, class prompts (prior)": {"identity_share": 0.2},
    }
    config = asdict(ExperimentConfig(train_seed=seed, **METHODS[method]))
    checkpoints = [
        {"step": 0, "quality_ratio": 0.0, "identity_share": 0.3},
        {"step": 500, "quality_ratio": quality, "identity_share": share},
    ]
    result = {"character": "unicorn-girl", "config": config, "scores": scores, "checkpoints": checkpoints}
    (cell / "scores.json").write_text(json.dumps(result))
    (cell / "report").mkdir()
    return name


def test_comparison_report_has_each_methods_cost_scores_and_quality_per_checkpoint(tmp_path):
    _cell(tmp_path, "dreambooth", 0.6, 0.2, 4000, 120.0)
    _cell(tmp_path, "dreambooth", 0.8, 0.4, 4000, 180.0, seed=1)
    _cell(tmp_path, "lora", 0.3, 0.0, 30, 60.0)
    _cell(tmp_path, "dreambooth-lora", 0.7, 0.3, 250, 90.0)
    cells = read_cells(tmp_path)
    rows = {r["method"]: r for r in method_rows(cells)}
    assert set(rows) == {"prompt only (base, full description)", "dreambooth", "lora", "dreambooth-lora"}
    db = rows["dreambooth"]
    assert db["cells"] == 2 and db["weights_bytes"] == 4000 and db["train_seconds"] == 150.0  # png not counted
    assert abs(db["identity_share"] - 0.7) < 1e-9 and abs(db["quality_ratio"] - 0.3) < 1e-9
    assert abs(db["new_bg_share"] - 0.35) < 1e-9 and rows["lora"]["weights_bytes"] == 30
    assert rows["prompt only (base, full description)"]["identity_share"] == 0.7
    report = write_report(tmp_path, cells)
    page = report.read_text()
    assert "Table 1" in page and "Table 2" in page and "4.0 kB" in page and "2.5 min" in page
    assert "4 GB / 2 h / low" in page and "25 MB / 1 h / high" in page  # the thesis beside each method
    assert "dreambooth-lora-unicorn-girl-s0/report/grid-0.png" in page
    saved = json.loads((tmp_path / "comparison.json").read_text())
    at_500 = saved["checkpoints"]["dreambooth"]["500"]  # Table 2: the mean over the method's two cells
    assert abs(at_500["quality_ratio"] - 0.3) < 1e-9 and abs(at_500["identity_share"] - 0.7) < 1e-9


def test_compare_refuses_unknown_methods_and_characters_before_training(tmp_path, capsys):
    code, _, err = run_cli("world", "compare", str(tmp_path / "c"), "--methods", "dreambooth,textual-inversion", capsys=capsys)
    assert code == 2 and "unknown textual-inversion" in err and "Traceback" not in err
    code, _, err = run_cli("world", "compare", str(tmp_path / "c"), "--characters", "unicorn-girl,nobody", capsys=capsys)
    assert code == 2 and "unknown held-out character 'nobody'" in err
    assert not (tmp_path / "c").exists()
