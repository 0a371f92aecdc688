"""What a newcomer trips over, each pinned through the command line (exit code and message asserted)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import FAST, run_cli
from PIL import Image

from charforge import api
from charforge.evaluate.quality import Thresholds, no_pass_note
from charforge.evaluate.results import PointSummary

ENTRY_POINT = Path(sys.executable).parent / "charforge"


def _one_line_error(code: int, out: str, err: str, *fragments: str) -> str:
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: "), err
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_a_full_dreambooth_model_keeps_the_guidance_its_base_recommends(workspace, tiny_sd1, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `generate --base` writes outputs/ in the working folder
    base = tmp_path / "base"
    shutil.copytree(tiny_sd1, base)
    (base / "charforge.json").write_text('{"guidance": 3.0}')
    result = api.train(workspace, base=str(base), method="dreambooth", max_train_steps=1, show_progress=False, **FAST)
    saved = json.loads((result.final_dir / "charforge.json").read_text())
    assert saved == {"guidance": 3.0, "name": f"UnicornGirl-{result.run_dir.name}"}  # drawn as its base, named as itself
    assert json.loads((result.run_dir / "run.json").read_text())["recommended_guidance"] == 3.0
    # generate with the run, and with its final/ as a base of its own, draw at 3 without being told
    for args in (["generate", workspace.root], ["generate", "--base", result.final_dir]):
        size = ["--width", "32", "--height", "32"]
        code, out, err = run_cli(*args, "a picture of UnicornGirl girl", "--steps", "2", *size, capsys=capsys)
        assert code == 0, err
        folder = Path(out.splitlines()[-2].split(": ", 1)[1])
        assert "CFG scale: 3," in Image.open(next(folder.glob("0*.png"))).text["parameters"]


def test_train_without_a_base_says_what_to_pass_and_base_world_is_a_base(workspace, capsys):
    _one_line_error(
        *run_cli("train", workspace.root, capsys=capsys),
        "train needs a base model: --base ID|FOLDER|FILE.safetensors (the mini world's model: --base world)",
    )
    code, out, err = run_cli(
        "train", workspace.root, "--base", "world", "--max-train-steps", "1", "--resolution", "64", "--validation-steps", "0",
        "--no-save-kohya", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    from charforge.world import MODEL_DIR

    assert json.loads((workspace.runs_dir / "run-001" / "run.json").read_text())["base"] == str(MODEL_DIR)


def test_a_broken_pickle_with_the_unsafe_flag_is_one_line(tmp_path, capsys):
    broken = tmp_path / "model.ckpt"
    broken.write_bytes(b"\x80\x04not a pickle at all")
    _one_line_error(
        *run_cli("generate", "--base", broken, "--allow-unsafe-pickle", "a girl", capsys=capsys),
        "model.ckpt: not a readable .ckpt checkpoint",
    )


@pytest.mark.parametrize("bad", [["--sampler", "nope"], ["--width", "33"]])
def test_a_refused_generate_leaves_no_empty_folder(tiny_sd1, tmp_path, capsys, monkeypatch, bad):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("generate", "--base", tiny_sd1, "a girl", "--steps", "1", *bad, capsys=capsys)
    _one_line_error(code, out, err)
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").iterdir())


def test_a_sweep_without_a_base_makes_nothing(workspace, capsys):
    _one_line_error(*run_cli("sweep", workspace.root, "--lr", "1e-4", "--steps", "2", capsys=capsys), "train needs a base model")
    assert not (workspace.root / "sweeps").exists()


def test_outputs_follow_the_users_umask(tiny_sd1, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outputs/ goes to the working folder
    old = os.umask(0o022)
    try:
        code, out, err = run_cli(
            "generate", "--base", tiny_sd1, "a girl", "--steps", "1", "--width", "32", "--height", "32", capsys=capsys
        )
    finally:
        os.umask(old)
    assert code == 0, err
    folder = Path(out.splitlines()[-2].split(": ", 1)[1])
    for path in [folder, *folder.iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


@pytest.mark.slow
def test_ctrl_c_in_generate_keeps_what_was_drawn_and_exits_130(tiny_sd1, tmp_path):
    args = [str(ENTRY_POINT), "generate", "--base", str(tiny_sd1), "a girl", "-n", "400", "--steps", "2"]
    args += ["--width", "32", "--height", "32"]
    # The child takes Ctrl-C as a terminal's would, even when the suite itself was started in the background by a shell
    # without job control (which makes SIGINT ignored, and the child would inherit that).
    reset = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=reset)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(tmp_path.glob("outputs/*/0*.png"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    written = int(line.split("interrupted; ")[1].split(" of ")[0])
    assert line.endswith(" pictures written to " + str(next(tmp_path.glob("outputs/*")).relative_to(tmp_path)))
    assert " of 400 " in line and written >= 2
    assert len(list(tmp_path.glob("outputs/*/0*.png"))) == written
    assert (next(tmp_path.glob("outputs/*")) / "contact-sheet.png").is_file()


def test_offline_captioner_and_encoders_say_what_to_pass_at_once(workspace, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    line = _one_line_error(*run_cli("caption", workspace.root, "--captioner", "blip", capsys=capsys), "HF_HUB_OFFLINE is set")
    assert "--model" in line and time.perf_counter() - started < 20
    from charforge.errors import CharforgeError
    from charforge.evaluate.encoders import ClipEncoder

    with pytest.raises(CharforgeError, match="--clip: 'openai/clip-vit-base-patch32' is not on this machine.*--clip none"):
        ClipEncoder.load("openai/clip-vit-base-patch32")


def test_when_no_checkpoint_passes_the_report_says_so_and_what_fails_most():
    thresholds = Thresholds(values={"clip_i": 0.8, "clip_t": 0.3})
    points = [
        PointSummary(point="step-000000", step=0, base=True, quality_ratio=0.5),
        PointSummary(point="step-000100", step=100, quality_ratio=0.0),
    ]
    rows = [
        {"point": "step-000100", "clip_i": 0.5, "clip_t": 0.4},
        {"point": "step-000100", "clip_i": 0.5, "clip_t": 0.1},
        {"point": "step-000000", "clip_i": 0.1, "clip_t": 0.1},  # the base model's pictures do not count
    ]
    assert no_pass_note(points, rows, thresholds) == (
        "no checkpoint passes the criteria; ranked by identity score (failing most: clip_i in 100% of pictures, "
        "clip_t in 50% of pictures)"
    )
    points[1].quality_ratio = 0.25
    assert no_pass_note(points, rows, thresholds) is None


def test_token_embedding_training_keeps_its_encoder_fp32_under_bf16(workspace, tiny_sd1):
    """CPU LayerNorm refuses fp32 input with bf16 weights even under autocast: the encoder whose rows train stays fp32."""
    from charforge.train import loop

    seen = {}
    place = loop._place_models

    def spy(pipe, adapter, trainable, device, weight_dtype):
        place(pipe, adapter, trainable, device, weight_dtype)
        seen["text_encoder"], seen["unet"] = pipe.text_encoder.dtype, pipe.unet.dtype

    with pytest.MonkeyPatch.context() as m:
        m.setattr(loop, "_place_models", spy)
        api.train(
            workspace, base=str(tiny_sd1), max_train_steps=1, train_token_embedding=True, show_progress=False,
            **{**FAST, "mixed_precision": "bf16"},
        )  # fmt: skip
    assert seen == {"text_encoder": torch.float32, "unet": torch.bfloat16}
