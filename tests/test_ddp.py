"""Training under `accelerate launch` with 2 CPU processes (gloo DDP) completes and writes one set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from charforge.train import checkpoint as ckpt


@pytest.mark.slow
def test_two_process_training(workspace, tiny_sd1):
    # The launcher of this interpreter's environment, found without PATH (a venv need not be activated).
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29517",
        "-m",
        "charforge",
        "train",
        str(workspace.root),
        "--base",
        str(tiny_sd1),
        "--resolution",
        "32",
        "--max-train-steps",
        "4",
        "--checkpointing-steps",
        "2",
        "--validation-steps",
        "2",
        "--validation-inference-steps",
        "2",
        "--run",
        "ddp",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-1500:], done.stderr[-3000:])
    run_dir = workspace.runs_dir / "ddp"
    assert [s for s, _ in ckpt.list_checkpoints(run_dir)] == [2, 4]
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["step-000002.png", "step-000004.png"]
    assert len(load_file(str(run_dir / "final" / "pytorch_lora_weights.safetensors"))) > 0
    rows = (run_dir / "loss.csv").read_text().strip().splitlines()
    assert len(rows) == 5  # one writer: header + 4 steps
    assert not any(p.name.startswith(".") for p in (run_dir / "checkpoints").iterdir())
