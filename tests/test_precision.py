"""Every precision path: bf16 asked for explicitly (bf16 runs on any CPU, only slower without native support),
``auto`` on a CPU with native bf16, and fp16's clear refusal on CPU.

The suite's other tests train in fp32 on machines without native bf16; these request bf16 so that the
train -> save -> load -> generate paths are exercised on every machine, with and without native bf16.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FAST
from PIL import Image
from safetensors.torch import load_file

from charforge import api
from charforge.errors import CharforgeError
from charforge.train import loop

BF16 = {**FAST, "mixed_precision": "bf16"}
PROMPT = "a picture of UnicornGirl girl"


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_bf16_lora_with_prior_validation_and_pivotal_tuning_saves_fp32_that_a_fp32_pipeline_loads(workspace, tiny_sd1):
    """Class images and validation samples are drawn in mixed dtypes (bf16 UNet and text encoder, fp32 VAE), and the
    identifier's fp32 rows pass through a bf16 text encoder: all of it under the run's autocast."""
    options = dict(
        base=str(tiny_sd1),
        learning_rate=5e-3,
        prior_preservation=True,
        num_class_images=2,
        class_inference_steps=2,
        train_token_embedding=True,
        show_progress=False,
        **{**BF16, "validation_steps": 2, "validation_inference_steps": 2, "checkpointing_steps": 2},
    )
    result = api.train(workspace, run="bf16", max_train_steps=4, **options)
    assert all(loss == loss for loss in result.losses)  # no NaN
    assert len(list(workspace.class_images_dir.glob("*/*.png"))) == 2
    assert sorted(p.name for p in (result.run_dir / "samples").iterdir()) == ["step-000002.png", "step-000004.png"]
    assert json.loads((result.run_dir / "run.json").read_text())["precision"] == "bf16"

    # Saved in fp32 (the trained weights stay fp32 under mixed precision), in both formats.
    kohya = f"UnicornGirl-{result.run_dir.name}.safetensors"  # the kohya copy is named after the run
    embedding = f"UnicornGirl-{result.run_dir.name}_emb.safetensors"
    for name in ("pytorch_lora_weights.safetensors", kohya, embedding, "token_embeddings.safetensors"):
        dtypes = {t.dtype for t in load_file(str(result.final_dir / name)).values()}
        assert dtypes == {torch.float32}, (name, dtypes)

    # A fresh fp32 pipeline loads the LoRA as is and draws something else with it.
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd1), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(num_inference_steps=3, height=32, width=32, output_type="np")
    plain = pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kw).images
    pipe.load_lora_weights(str(result.final_dir))
    assert pipe.unet.dtype == torch.float32
    with_lora = pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kw).images
    assert np.isfinite(with_lora).all() and abs(plain - with_lora).mean() > 1e-4

    # generate with the run (LoRA + the identifier's rows) and from a checkpoint.
    kwargs = dict(seeds=[0], steps=2, width=32, height=32, show_progress=False)
    final = api.generate(workspace, [PROMPT], model=api.ModelChoice(run="bf16"), **kwargs).images[0]
    step2 = api.generate(workspace, [PROMPT], model=api.ModelChoice(run="bf16", checkpoint=2), **kwargs).images[0]
    assert not np.array_equal(_pixels(final), _pixels(step2))

    # Resume in bf16: 2 + 2 steps end where 4 straight steps ended.
    api.train(workspace, run="cut", max_train_steps=2, **options)
    api.resume(workspace, run="cut", max_train_steps=4, show_progress=False)
    straight = load_file(str(result.final_dir / "pytorch_lora_weights.safetensors"))
    resumed = load_file(str(workspace.runs_dir / "cut" / "final" / "pytorch_lora_weights.safetensors"))
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=1e-4, atol=1e-5)


def test_bf16_dreambooth_saves_fp32_and_its_checkpoints_draw_as_its_final_model(workspace, tiny_sd1, tmp_path):
    """The frozen text encoder runs in bf16 during training; the saved model holds the base's fp32 weights, so the last
    checkpoint (UNet on the base) draws what the final model draws, in generate and in evaluate."""
    from charforge.models.loading import load_base_model

    options = {**BF16, "checkpointing_steps": 1}
    result = api.train(
        workspace, base=str(tiny_sd1), method="dreambooth", max_train_steps=2, learning_rate=1e-2, show_progress=False, **options
    )
    final = load_base_model(str(result.final_dir)).pipe
    base = load_base_model(str(tiny_sd1)).pipe
    assert final.unet.dtype == final.text_encoder.dtype == torch.float32
    for a, b in zip(final.text_encoder.parameters(), base.text_encoder.parameters(), strict=True):
        assert torch.equal(a, b)  # not round-tripped through bf16

    kwargs = dict(seeds=[0], steps=2, width=32, height=32, show_progress=False)
    images = {
        name: _pixels(api.generate(workspace, [PROMPT], model=api.ModelChoice(checkpoint=step), **kwargs).images[0])
        for name, step in {"step1": 1, "step2": 2, "final": None}.items()
    }
    assert np.array_equal(images["step2"], images["final"])
    assert not np.array_equal(images["step1"], images["final"])

    prompts = tmp_path / "prompts.yaml"
    prompts.write_text('seeds: [0]\nprompts:\n  - id: waving\n    prompt: "{token} {class_word} waving"\n')
    evaluated = api.evaluate(workspace, prompts=prompts, clip="none", dino="none", steps=2, show_progress=False)
    assert [p.point for p in evaluated.metrics.points][-1] == "step-000002"


def test_bf16_sdxl_lora_with_both_text_encoders(workspace, tiny_sdxl):
    result = api.train(workspace, base=str(tiny_sdxl), max_train_steps=2, train_text_encoder=True, show_progress=False, **BF16)
    assert all(loss == loss for loss in result.losses)
    weights = load_file(str(result.final_dir / "pytorch_lora_weights.safetensors"))
    assert any(k.startswith("text_encoder_2.") for k in weights)
    assert {t.dtype for t in weights.values()} == {torch.float32}
    image = api.generate(workspace, [PROMPT], seeds=[0], steps=2, width=32, height=32, show_progress=False).images[0]
    assert _pixels(image).std() > 0


def test_auto_picks_bf16_on_a_cpu_with_native_bf16_and_trains(workspace, tiny_sd1, monkeypatch):
    monkeypatch.setattr(loop.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)
    assert loop.resolve_precision("auto") == "no"
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    assert loop.resolve_precision("auto") == "bf16"
    result = api.train(
        workspace, base=str(tiny_sd1), max_train_steps=2, prior_preservation=True, num_class_images=1,
        class_inference_steps=2, show_progress=False, **{**FAST, "mixed_precision": "auto"},
    )  # fmt: skip
    assert json.loads((result.run_dir / "run.json").read_text())["precision"] == "bf16"


def test_fp16_on_cpu_is_refused_in_one_line(workspace, tiny_sd1):
    if torch.cuda.is_available():
        pytest.skip("fp16 is allowed on CUDA")
    with pytest.raises(CharforgeError, match="fp16 needs a CUDA GPU; on CPU use bf16 or no"):
        api.train(workspace, base=str(tiny_sd1), max_train_steps=1, show_progress=False, **{**FAST, "mixed_precision": "fp16"})


def test_one_process_trains_fp32_then_bf16_then_fp32(workspace, tiny_sd1):
    """accelerate's per-process state must not pin the first run's precision (a sweep, the API, the web UI)."""
    for precision in ("no", "bf16", "no"):
        result = api.train(
            workspace, base=str(tiny_sd1), max_train_steps=1, show_progress=False, run=f"r-{precision}", overwrite=True,
            **{**FAST, "mixed_precision": precision},
        )  # fmt: skip
        assert json.loads((result.run_dir / "run.json").read_text())["precision"] == precision
