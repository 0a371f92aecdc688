"""LoRA files: saved weights restore exactly into fresh adapters (what resume relies on)."""

from __future__ import annotations

import pytest
import torch

from charforge.models.family import ModelFamily
from charforge.models.lora import TEXT_ENCODER_TARGETS, UNET_TARGETS, add_lora, load_lora_into, save_lora
from charforge.models.tiny import build_tiny_pipeline


def _with_adapters(family: ModelFamily, seed: int) -> dict[str, torch.nn.Module]:
    pipe = build_tiny_pipeline(family, seed=seed)
    names = ["text_encoder"] + (["text_encoder_2"] if family is ModelFamily.SDXL else [])
    modules = {"unet": pipe.unet, **{n: getattr(pipe, n) for n in names}}
    for name, module in modules.items():
        add_lora(module, 4, 8, UNET_TARGETS if name == "unet" else TEXT_ENCODER_TARGETS)
    return modules


@pytest.mark.parametrize("family", [ModelFamily.SD1, ModelFamily.SDXL])
def test_save_then_load_restores_every_lora_weight(tmp_path, family):
    source = _with_adapters(family, seed=0)
    for module in source.values():
        for name, param in module.named_parameters():
            if "lora_B" in name:  # B starts at zero; make it non-trivial
                param.data.normal_()
    save_lora(tmp_path, family, source, rank=4, alpha=8)
    target = _with_adapters(family, seed=1)
    load_lora_into(tmp_path, target, family)
    for name in source:
        a = {k: v for k, v in source[name].named_parameters() if "lora_" in k}
        b = {k: v for k, v in target[name].named_parameters() if "lora_" in k}
        assert a and a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], msg=f"{name}.{key}")
