"""Generation: LoRAs from runs and files, samplers, PNG metadata that parses back, contact sheets."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import FAST, run_cli
from PIL import Image

from charforge import api
from charforge.errors import CharforgeError
from charforge.generate.metadata import GenerationParams, read_png_params
from charforge.generate.schedulers import SAMPLERS
from charforge.models.family import ModelFamily
from charforge.models.files import exported_file
from charforge.models.loading import recommended_guidance


def test_params_text_round_trip():
    params = GenerationParams(
        prompt="UnicornGirl, waving, happy",
        negative_prompt="blurry, extra limbs",
        steps=50,
        sampler="DPM++ 2M Karras",
        cfg_scale=7.5,
        seed=42,
        width=512,
        height=768,
        model="sd15",
        loras=[("unicorn", 0.8), ("style", 0.5)],
    )
    text = params.to_text()
    assert text.splitlines()[1] == "Negative prompt: blurry, extra limbs"
    assert text.splitlines()[0] == "UnicornGirl, waving, happy <lora:unicorn:0.8> <lora:style:0.5>"  # A1111's tags
    assert "Steps: 50, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 42, Size: 512x768" in text
    assert GenerationParams.from_text(text) == params


def test_generate_from_run_embeds_parameters_and_sheet(workspace, tiny_sd1, capsys):
    api.train(workspace, base=str(tiny_sd1), max_train_steps=2, show_progress=False, **FAST)
    code, out, err = run_cli(
        "generate",
        workspace.root,
        "a picture of UnicornGirl girl sad",
        "-n",
        "3",
        "--steps",
        "3",
        "--seed",
        "7",
        "--sampler",
        "euler-a",
        "--negative",
        "ugly",
        capsys=capsys,
    )
    assert code == 0, err
    folder = workspace.outputs_dir / next(p.name for p in workspace.outputs_dir.iterdir())
    pngs = sorted(p for p in folder.glob("0*.png"))
    assert len(pngs) == 3 and (folder / "contact-sheet.png").is_file()
    params = [read_png_params(p) for p in pngs]
    assert [p.seed for p in params] == [7, 8, 9]
    assert params[0].prompt == "a picture of UnicornGirl girl sad" and params[0].negative_prompt == "ugly"
    assert params[0].sampler == "Euler a" and params[0].steps == 3 and params[0].width == 32
    assert params[0].loras == [("UnicornGirl-run-001", 1.0)]  # the kohya file's name, as A1111 lists it
    arrays = [np.asarray(Image.open(p)) for p in pngs]
    assert not np.array_equal(arrays[0], arrays[1])  # different seeds, different images


def test_guidance_defaults_to_what_the_model_recommends(tiny_sd1, tmp_path, capsys):
    """A model folder's charforge.json sets the guidance drawn at when none is asked (the mini world ships 5: SD's 7.5
    turns its taught pink hair purple); without one it is SD's 7.5; a broken one is named in a one-line error."""
    from charforge.world import MODEL_DIR, RECOMMENDED_GUIDANCE

    assert recommended_guidance(str(MODEL_DIR)) == RECOMMENDED_GUIDANCE == 5.0
    model = tmp_path / "model"
    shutil.copytree(tiny_sd1, model)
    outputs = iter(range(10))

    def drawn_at(*extra: str) -> float:
        out = tmp_path / f"out{next(outputs)}"
        code, _, err = run_cli("generate", "a girl", "--base", model, "--steps", "2", "--out", out, *extra, capsys=capsys)
        assert code == 0, err
        return read_png_params(next(out.glob("0*.png"))).cfg_scale

    assert drawn_at() == 7.5
    (model / "charforge.json").write_text('{"guidance": 3.5}')
    assert drawn_at() == 3.5
    assert drawn_at("--guidance", "6") == 6.0
    (model / "charforge.json").write_text('{"guidance": "strong"}')
    code, out, err = run_cli("generate", "a girl", "--base", model, "--steps", "2", "--out", tmp_path / "bad", capsys=capsys)
    assert code == 2 and "charforge.json" in err and "guidance" in err and "Traceback" not in err + out


def test_batched_generation_draws_what_single_draws_draw(tiny_sd1, tmp_path):
    common = dict(prompts=["a red ball", "a blue cube"], seeds=[3, 4], steps=3, negative_prompt="ugly", show_progress=False)
    one = api.generate(None, model=api.ModelChoice(base=str(tiny_sd1)), out_dir=tmp_path / "one", **common)
    batched = api.generate(None, model=api.ModelChoice(base=str(tiny_sd1)), out_dir=tmp_path / "batched", batch_size=3, **common)
    assert len(batched.images) == 4  # 2 prompts x 2 seeds in batches of 3 and 1
    for a, b in zip(one.images, batched.images, strict=True):
        assert (read_png_params(a).prompt, read_png_params(a).seed) == (read_png_params(b).prompt, read_png_params(b).seed)
        diff = np.abs(np.asarray(Image.open(a), dtype=int) - np.asarray(Image.open(b), dtype=int))
        assert diff.max() <= 2  # same noise and prompt; only summation order differs
    arrays = [np.asarray(Image.open(p)) for p in batched.images]
    assert not np.array_equal(arrays[0], arrays[1]) and not np.array_equal(arrays[0], arrays[2])
    with pytest.raises(CharforgeError, match="batch-size"):
        api.generate(None, model=api.ModelChoice(base=str(tiny_sd1)), out_dir=tmp_path / "bad", batch_size=0, **common)


def test_lora_weight_zero_equals_base_and_several_loras(workspace, tiny_sd1, tmp_path):
    run = api.train(workspace, base=str(tiny_sd1), max_train_steps=3, learning_rate=1e-2, show_progress=False, **FAST)
    from charforge.generate.text2image import LoraSpec

    common = dict(num_images=1, steps=3, seed=1)
    plain = api.generate(None, ["x"], model=api.ModelChoice(base=str(tiny_sd1)), out_dir=tmp_path / "a", **common).images[0]
    zero = api.generate(
        None,
        ["x"],
        model=api.ModelChoice(base=str(tiny_sd1), loras=[LoraSpec(run.final_dir, 0.0)]),
        out_dir=tmp_path / "b",
        **common,
    ).images[0]
    kohya = exported_file(run.final_dir)
    two = api.generate(
        None,
        ["x"],
        model=api.ModelChoice(base=str(tiny_sd1), loras=[LoraSpec(run.final_dir, 0.5), LoraSpec(kohya, 0.5)]),
        out_dir=tmp_path / "c",
        **common,
    ).images[0]
    a, b, c = (np.asarray(Image.open(p), dtype=np.int16) for p in (plain, zero, two))
    assert np.abs(a - b).max() <= 1
    assert np.abs(a - c).mean() > 0.5
    assert read_png_params(two).loras == [("UnicornGirl-run-001", 0.5), ("UnicornGirl-run-001", 0.5)]  # folder and file


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_sampler_runs(tiny_sd1, tmp_path, sampler):
    result = api.generate(None, ["x"], model=api.ModelChoice(base=str(tiny_sd1)), out_dir=tmp_path, steps=6, sampler=sampler)
    assert read_png_params(result.images[0]).sampler == SAMPLERS[sampler][0]


def test_drawing_sizes_follow_what_each_architecture_can_draw():
    """SD's UNet pads its own downsampling, so any multiple of 8 draws (as in A1111), while a transformer needs whole
    latent patches: a side that is not one is refused with the multiple, before any step is drawn."""
    from charforge.generate.conditions import NONE
    from charforge.generate.text2image import _picture_size
    from charforge.models.loading import draw_multiple, size_multiple
    from charforge.models.tiny import build_tiny_pipeline

    sd, flux = build_tiny_pipeline(ModelFamily.SD1), build_tiny_pipeline(ModelFamily.FLUX)
    assert draw_multiple(sd) == 8 and _picture_size(sd, NONE, 40, 24) == (40, 24)
    assert size_multiple(flux) == 4 and draw_multiple(flux) == 8  # tiny FLUX: VAE 2 x patch 2, and diffusers' 8
    with pytest.raises(CharforgeError, match="multiples of 8"):
        _picture_size(flux, NONE, 36, 32)  # a multiple of the VAE's 2 (all the old check asked), not of a patch
