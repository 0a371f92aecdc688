"""The one painter changes no picture: a reused base that wore other weights draws what a freshly loaded one draws."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAST
from PIL import Image

from charforge import api
from charforge.generate.painter import NOTHING, Painter, Wearing
from charforge.generate.text2image import LoraSpec, draw_batch

DRAW = dict(negative_prompt="", steps=3, guidance=5.0, width=32, height=32)
PROMPT = "a picture of UnicornGirl girl"


def pixels(painter: Painter, base: str, wearing: Wearing = NOTHING, sampler: str = "euler") -> np.ndarray:
    pipe = painter.wear(base, wearing, sampler=sampler).pipe
    return np.asarray(draw_batch(pipe, [PROMPT], [7], **DRAW)[0], dtype=np.int16)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, drawings, tiny_sd1):
    ws = api.init(tmp_path_factory.mktemp("ws") / "unicorn", token="UnicornGirl", class_word="girl")
    api.prepare(ws, [drawings])
    common = dict(base=str(tiny_sd1), max_train_steps=2, learning_rate=1e-2, show_progress=False)
    lora = api.train(ws, run="lora", train_token_embedding=True, **common, **FAST)
    full = api.train(ws, run="full", method="dreambooth", **common, **{**FAST, "checkpointing_steps": 1})
    return lora, full


def test_a_reused_base_draws_as_a_fresh_one_after_wearing_and_taking_off(runs, tiny_sd1):
    lora, full = runs
    base = str(tiny_sd1)
    with_lora = Wearing.of([LoraSpec(lora.final_dir)])
    with_checkpoint = Wearing(finetuned=full.run_dir / "checkpoints" / "step-000001")
    fresh = {name: pixels(Painter(), base, w) for name, w in [("base", NOTHING), ("lora", with_lora), ("db", with_checkpoint)]}
    assert np.abs(fresh["base"] - fresh["lora"]).mean() > 0.5 and np.abs(fresh["base"] - fresh["db"]).mean() > 0.5

    reused = Painter()
    sequence = [("lora", with_lora), ("base", NOTHING), ("db", with_checkpoint), ("lora", with_lora), ("base", NOTHING)]
    for name, wearing in sequence:
        assert np.array_equal(pixels(reused, base, wearing), fresh[name]), name
    assert len(reused._models) == 1  # loaded once


def test_generate_draws_the_same_with_a_shared_painter(runs, tiny_sd1, tmp_path):
    lora, _ = runs
    painter = Painter()
    options = dict(steps=3, seed=3)
    worn = api.ModelChoice(str(tiny_sd1), loras=(LoraSpec(lora.final_dir, 0.8),))
    alone = api.generate(None, [PROMPT], model=worn, out_dir=tmp_path / "a", **options).images[0]
    api.generate(None, [PROMPT], model=api.ModelChoice(str(tiny_sd1)), painter=painter, out_dir=tmp_path / "b", **options)
    shared = api.generate(None, [PROMPT], model=worn, painter=painter, out_dir=tmp_path / "c", **options).images[0]
    assert np.array_equal(np.asarray(Image.open(alone)), np.asarray(Image.open(shared)))


def test_a_sampler_does_not_inherit_the_options_of_the_one_before(tiny_sd1):
    """Each sampler is built from the model's own scheduler settings: Karras sigmas do not carry over."""
    base = str(tiny_sd1)
    plain = pixels(Painter(), base, sampler="dpm++2m")
    reused = Painter()
    assert not np.array_equal(pixels(reused, base, sampler="dpm++2m-karras"), plain)
    assert np.array_equal(pixels(reused, base, sampler="dpm++2m"), plain)
    assert not reused.model(base).pipe.scheduler.config.use_karras_sigmas
