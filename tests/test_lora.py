"""LoRA files: saved weights restore exactly into fresh adapters (what resume relies on)."""

from __future__ import annotations

import pytest
import torch
from conftest import export_facts

from charforge.models.family import ModelFamily
from charforge.models.lora import TEXT_ENCODER_TARGETS, UNET_TARGETS, add_lora, load_lora_into, save_lora
from charforge.models.tiny import build_tiny_pipeline


def _with_adapters(family: ModelFamily, seed: int, targets: str = "attention") -> dict[str, torch.nn.Module]:
    pipe = build_tiny_pipeline(family, seed=seed)
    names = ["text_encoder"] + (["text_encoder_2"] if family is ModelFamily.SDXL else [])
    modules = {"unet": pipe.unet, **{n: getattr(pipe, n) for n in names}}
    for name, module in modules.items():
        add_lora(module, 4, 8, (UNET_TARGETS if name == "unet" else TEXT_ENCODER_TARGETS)[targets])
    return modules


@pytest.mark.parametrize(
    ("family", "targets"), [(ModelFamily.SD1, "attention"), (ModelFamily.SDXL, "attention"), (ModelFamily.SD1, "all")]
)
def test_save_then_load_restores_every_lora_weight(tmp_path, family, targets):
    source = _with_adapters(family, seed=0, targets=targets)
    for module in source.values():
        for name, param in module.named_parameters():
            if "lora_B" in name:  # B starts at zero; make it non-trivial
                param.data.normal_()
    save_lora(tmp_path, family, source, rank=4, alpha=8, targets=targets)
    target = _with_adapters(family, seed=1, targets=targets)
    load_lora_into(tmp_path, target, family)
    for name in source:
        a = {k: v for k, v in source[name].named_parameters() if "lora_" in k}
        b = {k: v for k, v in target[name].named_parameters() if "lora_" in k}
        assert a and a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], msg=f"{name}.{key}")


@pytest.mark.parametrize("targets", ["transformer", "all"])
def test_wider_lora_loads_whole_into_a_fresh_pipeline_in_both_formats(tmp_path, targets):
    """Convolution and feed-forward LoRA must load completely: from our file and from the kohya copy."""
    family = ModelFamily.SD1
    trained = build_tiny_pipeline(family, seed=0)
    add_lora(trained.unet, 4, 8, UNET_TARGETS[targets])
    for name, param in trained.unet.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    save_lora(tmp_path, family, {"unet": trained.unet}, rank=4, alpha=8, targets=targets, kohya=export_facts("kohya"))
    x, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    hidden = torch.randn(1, 77, trained.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = trained.unet(x, t, hidden).sample
        base = build_tiny_pipeline(family, seed=0).unet(x, t, hidden).sample
        assert (expected - base).abs().max() > 1e-2
        for source in (tmp_path, tmp_path / "kohya.safetensors"):
            fresh = build_tiny_pipeline(family, seed=0)
            fresh.load_lora_weights(str(source))
            torch.testing.assert_close(fresh.unet(x, t, hidden).sample, expected, atol=1e-5, rtol=1e-4, msg=str(source))


def test_bundled_embeddings_use_the_keys_a1111_and_comfyui_read_and_split_back():
    """SD 1.x/2.x bundles one encoder's rows as ``string_to_param.*``, SDXL its two as ``clip_l`` / ``clip_g``; the
    split gives back the LoRA's own tensors and each token's rows, and refuses an encoder it cannot place."""
    from charforge.models.token_embeddings import bundle, unbundle

    one, l_rows, g_rows = torch.randn(3, 32), torch.randn(2, 32), torch.randn(2, 64)
    assert list(bundle("UnicornGirl", {"text_encoder": one})) == ["bundle_emb.UnicornGirl.string_to_param.*"]
    sdxl = bundle("sks", {"text_encoder": l_rows, "text_encoder_2": g_rows})
    assert sorted(sdxl) == ["bundle_emb.sks.clip_g", "bundle_emb.sks.clip_l"]

    lora_key = "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"
    state = {lora_key: torch.ones(1), **sdxl, **bundle("UnicornGirl", {"text_encoder": one})}
    lora, embeddings = unbundle(state)
    assert list(lora) == [lora_key]
    found = dict(embeddings)
    assert set(found) == {"sks", "UnicornGirl"}
    assert torch.equal(found["sks"]["text_encoder"], l_rows) and torch.equal(found["sks"]["text_encoder_2"], g_rows)
    assert torch.equal(found["UnicornGirl"]["text_encoder"], one)
    with pytest.raises(ValueError, match="bundle_emb.flux.t5"):
        unbundle({"bundle_emb.flux.t5": torch.ones(1, 8)})
