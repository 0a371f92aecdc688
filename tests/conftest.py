"""Shared fixtures: tiny models built from configs (no network) and a prepared character workspace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from charforge import api  # noqa: E402
from charforge.models.family import ModelFamily  # noqa: E402
from charforge.models.tiny import save_tiny_model  # noqa: E402


def draw_character(i: int, size: int):
    """The mini world's unicorn girl in her i-th reference view (white background)."""
    from charforge.world.attributes import HELD_OUT, REFERENCE_SCENES
    from charforge.world.render import render

    return render(HELD_OUT["unicorn-girl"], REFERENCE_SCENES[i % len(REFERENCE_SCENES)], size, seed=i)


@pytest.fixture(scope="session")
def tiny_sd1(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd1", ModelFamily.SD1)


@pytest.fixture(scope="session")
def tiny_sd2(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd2", ModelFamily.SD2)


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sdxl", ModelFamily.SDXL)


@pytest.fixture(scope="session")
def drawings(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("drawings")
    for i in range(4):
        draw_character(i, size=96).save(folder / f"pose-{i}.png")
    return folder


@pytest.fixture
def workspace(tmp_path, drawings):
    ws = api.init(tmp_path / "unicorn-girl", token="UnicornGirl", class_word="girl")
    api.prepare(ws, [drawings])
    return ws


# A two-prompt evaluation set, one seed: the smallest evaluation that still compares checkpoints.
PROMPTS = """seeds: [0]
prompts:
  - id: waving
    prompt: "{token} {class_word} waving"
  - id: beach
    prompt: "{token} {class_word} on a beach"
"""

# Small, fast training settings shared by the tests (tiny model, 32 px, no validation grids).
FAST = dict(resolution=32, validation_steps=0, checkpointing_steps=1000)


def run_cli(*args: str, capsys=None) -> tuple[int, str, str]:
    """Run the real entry point in-process; returns (exit code, stdout, stderr)."""
    from charforge.cli import main

    old = sys.argv
    sys.argv = ["charforge", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    out, err = capsys.readouterr() if capsys else ("", "")
    return code, out, err


def unicorn_girl_workspace(root: Path):
    """A workspace of the mini world's held-out unicorn girl: her six reference renders, prepared at 64 px
    as a user's drawings would be (files ``ref-0.png`` ... ``ref-5.png``)."""
    from charforge.recipes.world_experiment import reference_images
    from charforge.world.attributes import held_out

    drawings = root / "drawings"
    drawings.mkdir()
    for i, image in enumerate(reference_images(held_out("unicorn-girl"), 256)):
        image.save(drawings / f"ref-{i}.png")
    ws = api.init(root / "ws", token="sks", class_word="girl", world="unicorn-girl")
    api.prepare(ws, [drawings], resolution=64, crop="center")
    return ws


def export_facts(output_name: str = "kohya", **changes):
    """What a result's files record, for tests that write LoRA files without a training run."""
    from charforge.models.kohya import TrainingFacts

    facts = dict(
        output_name=output_name,
        token="sks",
        class_word="girl",
        trigger_prompt="a picture of sks girl",
        base_source="tiny",
        base_name="tiny",
        base_hash="",
        method="dreambooth-lora",
        resolution=32,
        steps=1,
        started_at=0.0,
        finished_at=0.0,
        precision="no",
        prediction_type="epsilon",
        dataset_dir="images",
        image_count=1,
        class_image_count=0,
    )
    return TrainingFacts(**{**facts, **changes})
