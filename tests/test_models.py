"""Base-model sources load and their family is detected; unsafe and missing sources are refused."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from charforge.errors import CharforgeError
from charforge.models.family import ModelFamily, detect_single_file_family
from charforge.models.loading import load_base_model


@pytest.mark.parametrize(
    ("fixture", "family"), [("tiny_sd1", ModelFamily.SD1), ("tiny_sd2", ModelFamily.SD2), ("tiny_sdxl", ModelFamily.SDXL)]
)
def test_diffusers_folder_loads_with_family(request, fixture, family):
    base = load_base_model(str(request.getfixturevalue(fixture)))
    assert base.family is family
    assert type(base.pipe).__name__ == ("StableDiffusionXLPipeline" if family is ModelFamily.SDXL else "StableDiffusionPipeline")


def test_single_file_family_from_key_names():
    assert detect_single_file_family({"cond_stage_model.transformer.text_model.embeddings.x"}) is ModelFamily.SD1
    assert detect_single_file_family({"cond_stage_model.model.transformer.resblocks.0.x"}) is ModelFamily.SD2
    assert detect_single_file_family({"conditioner.embedders.1.model.x", "conditioner.embedders.0.x"}) is ModelFamily.SDXL
    with pytest.raises(ValueError):
        detect_single_file_family({"model.diffusion_model.x"})


def test_pickles_refused_without_flag(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"cond_stage_model.transformer.x": torch.zeros(1)}}, ckpt)
    with pytest.raises(CharforgeError, match=r"model.ckpt: .ckpt files are Python pickles.*--allow-unsafe-pickle"):
        load_base_model(str(ckpt))


def test_not_a_checkpoint_named(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"foo": torch.zeros(2)}, str(path))
    with pytest.raises(CharforgeError, match="other.safetensors: not a checkpoint charforge can teach"):
        load_base_model(str(path))
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(CharforgeError, match="broken.safetensors: not a valid .safetensors file"):
        load_base_model(str(bad))


def test_missing_path_and_unknown_hub_id(tmp_path, monkeypatch):
    with pytest.raises(CharforgeError, match="no such file or folder"):
        load_base_model(str(tmp_path / "nope.safetensors"))
    with pytest.raises(CharforgeError, match="not a diffusers model folder"):
        load_base_model(str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CharforgeError, match="--base: 'someone/no-such-model' is not on this machine and HF_HUB_OFFLINE is set"):
        load_base_model("someone/no-such-model")


def test_single_file_round_trip_loads_with_local_config(tiny_sd1, tmp_path):
    from charforge.models.single_file import save_single_file

    base = load_base_model(str(tiny_sd1))
    path = save_single_file(base.pipe, base.family, tmp_path / "model.safetensors", dtype=torch.float32)
    loaded = load_base_model(str(path), base_config=str(tiny_sd1))
    assert loaded.family is ModelFamily.SD1
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(base.pipe, name).state_dict(), getattr(loaded.pipe, name).state_dict()
        assert ours.keys() == theirs.keys()
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], msg=f"{name}.{key}")


def test_single_file_export_refuses_other_families(tiny_sdxl, tmp_path):
    from charforge.models.single_file import save_single_file

    base = load_base_model(str(tiny_sdxl))
    with pytest.raises(CharforgeError, match="SD1.x models for now, not SDXL"):
        save_single_file(base.pipe, base.family, tmp_path / "x.safetensors")
