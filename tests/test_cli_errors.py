"""Every bad input gets one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli
from PIL import Image


def _assert_clean_error(code, err, *fragments):
    assert code == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line, line


def test_init_rejects_empty_or_spaced_token(tmp_path, capsys):
    _assert_clean_error(
        *run_cli("init", tmp_path / "a", "--token", "", "--class-word", "girl", capsys=capsys)[::2], "--token is empty"
    )
    _assert_clean_error(
        *run_cli("init", tmp_path / "b", "--token", "Unicorn Girl", "--class-word", "girl", capsys=capsys)[::2], "contains spaces"
    )


def test_prepare_empty_folder_and_bad_files(tmp_path, capsys, drawings):
    code, _, _ = run_cli("init", tmp_path / "ws", "--token", "sks", "--class-word", "girl", capsys=capsys)
    assert code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_clean_error(*run_cli("prepare", tmp_path / "ws", empty, capsys=capsys)[::2], "empty", "folder is empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "readme.txt").write_text("hello")
    Image.new("RGB", (30, 30)).save(mixed / "small.png")
    Image.open(next(drawings.glob("*.png"))).save(mixed / "good.png")
    code, out, err = run_cli("prepare", tmp_path / "ws", mixed, capsys=capsys)
    assert code == 0
    assert "skipped" in err and "readme.txt: not an image file" in err and "small.png: too small" in err
    assert "1 new image(s) prepared" in out
    _assert_clean_error(*run_cli("prepare", tmp_path / "ws", mixed, "--strict", capsys=capsys)[::2], "readme.txt")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_text("nope")
    _assert_clean_error(*run_cli("prepare", tmp_path / "ws", only_bad, capsys=capsys)[::2], "no usable images")


@pytest.fixture
def ws(workspace):
    return workspace.root


def test_train_bad_inputs(ws, tiny_sd1, tmp_path, capsys):
    cases = [
        (["--base", tmp_path / "missing-model"], "no such file or folder"),
        (["--base", "not a model id"], "neither an existing path nor a hub id"),
        (["--base", tiny_sd1, "--resolution", "36"], "--resolution 36 is not a multiple of 8"),
        (["--base", tiny_sd1, "--method", "textual-inversion"], "method"),
        (["--base", tiny_sd1, "--preset", "nope"], "--preset 'nope' is unknown"),
        (["--base", tiny_sd1, "--mixed-precision", "fp16"], "fp16 needs a CUDA GPU"),
    ]
    for args, fragment in cases:
        _assert_clean_error(*run_cli("train", ws, *args, capsys=capsys)[::2], fragment)
    pickle = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, pickle)
    _assert_clean_error(*run_cli("train", ws, "--base", pickle, capsys=capsys)[::2], "--allow-unsafe-pickle")


def test_config_file_unknown_key_and_existing_run(ws, tiny_sd1, tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text(f"base: {tiny_sd1}\nlearning_rat: 1e-4\n")
    _assert_clean_error(
        *run_cli("train", ws, "--config", config, capsys=capsys)[::2], "train.yaml", "unknown option 'learning_rat'"
    )
    config.write_text(f"base: {tiny_sd1}\nresolution: 32\nmax-train-steps: 1\nvalidation_steps: 0\n")
    code, out, err = run_cli("train", ws, "--config", config, "--run", "one", capsys=capsys)
    assert code == 0, err
    assert "final weights" in out
    _assert_clean_error(
        *run_cli("train", ws, "--config", config, "--run", "one", capsys=capsys)[::2], "already exists", "--overwrite"
    )
    code, _, err = run_cli("train", ws, "--config", config, "--run", "one", "--overwrite", capsys=capsys)
    assert code == 0, err


def test_not_a_workspace_and_unknown_run(tmp_path, capsys, ws):
    _assert_clean_error(*run_cli("train", tmp_path, "--base", "x/y", capsys=capsys)[::2], "not a charforge workspace")
    _assert_clean_error(*run_cli("generate", ws, "hello", "--run", "nope", capsys=capsys)[::2], "run 'nope' not found")
