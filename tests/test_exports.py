"""What charforge writes is read whole by the programs our users load it into, checked by those programs' own rules.

The readers' rules are reproduced below from their source (each names the file and version it follows), and run on
full-size SD1.5 and SDXL architectures built on the meta device (no weights), so the key mapping is checked at
the block layout those programs expect, not only on tiny models:

* kohya sd-scripts ``networks/lora.py`` (``create_network_from_weights``): which LoRA module names it creates;
* A1111 v1.10 ``extensions-builtin/Lora/networks.py`` (``convert_diffusers_name_to_compvis``, ``load_network``);
* ComfyUI ``comfy/utils.py`` (``unet_to_diffusers``) and ``comfy/lora.py`` (``model_lora_keys_*``, ``load_lora``);
* A1111 v1.10 ``modules/infotext_utils.py`` (``parse_generation_parameters``), ``modules/extra_networks.py``
  (``re_extra_net``) and the Lora extension's ``infotext_pasted``; and the third-party reader ``sd-parsers``.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import FAST, export_facts
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from charforge import api
from charforge.generate.metadata import GenerationParams, read_png_params
from charforge.generate.text2image import LoraSpec
from charforge.models.family import ModelFamily
from charforge.models.files import exported_file
from charforge.models.hashes import file_sha256, lora_hash, tensor_data_sha256
from charforge.models.kohya import kohya_state_dict
from charforge.models.lora import TEXT_ENCODER_TARGETS, UNET_TARGETS, add_lora, peft_state_dict

# -- full-size architectures, no weights ------------------------------------------------------------------------

SD15_UNET = dict(
    sample_size=64,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768,
    attention_head_dim=8,
)
SDXL_UNET = dict(
    sample_size=128,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
    cross_attention_dim=2048,
)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
CLIP_G = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20)
ENCODERS = {ModelFamily.SD1: {"text_encoder": CLIP_L}, ModelFamily.SDXL: {"text_encoder": CLIP_L, "text_encoder_2": CLIP_G}}


def full_size_lora(family: ModelFamily, targets: str = "all") -> tuple[dict[str, torch.Tensor], object]:
    """The kohya keys charforge writes for a LoRA on every ``targets`` layer of the full-size model."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**(SDXL_UNET if family is ModelFamily.SDXL else SD15_UNET))
        encoders = {name: CLIPTextModel(CLIPTextConfig(**cfg)) for name, cfg in ENCODERS[family].items()}
    add_lora(unet, 1, 1, UNET_TARGETS[targets])
    for encoder in encoders.values():
        add_lora(encoder, 1, 1, TEXT_ENCODER_TARGETS[targets])
    layers = {"unet": peft_state_dict(unet), **{name: peft_state_dict(m, name) for name, m in encoders.items()}}
    return kohya_state_dict(layers, family, unet.config, alpha=1), unet.config


def lora_modules(kohya: dict[str, torch.Tensor]) -> set[str]:
    return {k.split(".", 1)[0] for k in kohya}


# -- ComfyUI: comfy/utils.py unet_to_diffusers and comfy/lora.py (commit 00728eb) --------------------------------

_COMFY_RESNET = {
    "in_layers.2.weight": "conv1.weight",
    "in_layers.2.bias": "conv1.bias",
    "emb_layers.1.weight": "time_emb_proj.weight",
    "emb_layers.1.bias": "time_emb_proj.bias",
    "out_layers.3.weight": "conv2.weight",
    "out_layers.3.bias": "conv2.bias",
    "skip_connection.weight": "conv_shortcut.weight",
    "skip_connection.bias": "conv_shortcut.bias",
    "in_layers.0.weight": "norm1.weight",
    "in_layers.0.bias": "norm1.bias",
    "out_layers.0.weight": "norm2.weight",
    "out_layers.0.bias": "norm2.bias",
}
_COMFY_ATTENTIONS = {"proj_in.weight", "proj_in.bias", "proj_out.weight", "proj_out.bias", "norm.weight", "norm.bias"}
_COMFY_TRANSFORMER = {
    *(f"norm{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")),
    *(f"attn{a}.to_{x}.weight" for a in (1, 2) for x in ("q", "k", "v", "out.0")),
    "attn1.to_out.0.bias",
    "attn2.to_out.0.bias",
    "ff.net.0.proj.weight",
    "ff.net.0.proj.bias",
    "ff.net.2.weight",
    "ff.net.2.bias",
}
_COMFY_BASIC = {
    ("label_emb.0.0.weight", "add_embedding.linear_1.weight"),
    ("label_emb.0.2.weight", "add_embedding.linear_2.weight"),
    ("input_blocks.0.0.weight", "conv_in.weight"),
    ("out.2.weight", "conv_out.weight"),
    ("time_embed.0.weight", "time_embedding.linear_1.weight"),
    ("time_embed.2.weight", "time_embedding.linear_2.weight"),
}
_LORA_CLIP_MAP = {
    "mlp.fc1": "mlp_fc1",
    "mlp.fc2": "mlp_fc2",
    "self_attn.k_proj": "self_attn_k_proj",
    "self_attn.q_proj": "self_attn_q_proj",
    "self_attn.v_proj": "self_attn_v_proj",
    "self_attn.out_proj": "self_attn_out_proj",
}


def comfy_unet_config(config) -> dict:
    """ComfyUI's model-detection view of a diffusers UNet config (what ``unet_to_diffusers`` takes)."""
    n, per = len(config.block_out_channels), config.layers_per_block
    depth = config.transformer_layers_per_block
    depth = [depth] * n if isinstance(depth, int) else list(depth)
    down = [depth[i] if t.startswith("CrossAttn") else 0 for i, t in enumerate(config.down_block_types) for _ in range(per)]
    up_depth = list(reversed(depth))
    up = [up_depth[x] if t.startswith("CrossAttn") else 0 for x, t in enumerate(config.up_block_types) for _ in range(per + 1)]
    return dict(
        num_res_blocks=[per] * n,
        channel_mult=[1] * n,
        transformer_depth=down,
        transformer_depth_output=list(reversed(up)),  # ComfyUI pops from the end
        transformer_depth_middle=depth[-1],
    )


def comfy_unet_to_diffusers(unet_config: dict) -> dict[str, str]:
    """``comfy.utils.unet_to_diffusers``: diffusers key -> original (LDM) key."""
    num_res_blocks = unet_config["num_res_blocks"]
    transformer_depth = unet_config["transformer_depth"][:]
    transformer_depth_output = unet_config["transformer_depth_output"][:]
    num_blocks = len(unet_config["channel_mult"])
    out = {}
    for x in range(num_blocks):
        n = 1 + (num_res_blocks[x] + 1) * x
        for i in range(num_res_blocks[x]):
            for b in _COMFY_RESNET:
                out[f"down_blocks.{x}.resnets.{i}.{_COMFY_RESNET[b]}"] = f"input_blocks.{n}.0.{b}"
            num_transformers = transformer_depth.pop(0)
            if num_transformers > 0:
                for b in _COMFY_ATTENTIONS:
                    out[f"down_blocks.{x}.attentions.{i}.{b}"] = f"input_blocks.{n}.1.{b}"
                for t in range(num_transformers):
                    for b in _COMFY_TRANSFORMER:
                        out[f"down_blocks.{x}.attentions.{i}.transformer_blocks.{t}.{b}"] = (
                            f"input_blocks.{n}.1.transformer_blocks.{t}.{b}"
                        )
            n += 1
        for k in ("weight", "bias"):
            out[f"down_blocks.{x}.downsamplers.0.conv.{k}"] = f"input_blocks.{n}.0.op.{k}"
    for b in _COMFY_ATTENTIONS:
        out[f"mid_block.attentions.0.{b}"] = f"middle_block.1.{b}"
    for t in range(unet_config["transformer_depth_middle"]):
        for b in _COMFY_TRANSFORMER:
            out[f"mid_block.attentions.0.transformer_blocks.{t}.{b}"] = f"middle_block.1.transformer_blocks.{t}.{b}"
    for i, n in enumerate([0, 2]):
        for b in _COMFY_RESNET:
            out[f"mid_block.resnets.{i}.{_COMFY_RESNET[b]}"] = f"middle_block.{n}.{b}"
    num_res_blocks = list(reversed(num_res_blocks))
    for x in range(num_blocks):
        n = (num_res_blocks[x] + 1) * x
        count = num_res_blocks[x] + 1
        for i in range(count):
            c = 0
            for b in _COMFY_RESNET:
                out[f"up_blocks.{x}.resnets.{i}.{_COMFY_RESNET[b]}"] = f"output_blocks.{n}.0.{b}"
            c += 1
            num_transformers = transformer_depth_output.pop()
            if num_transformers > 0:
                c += 1
                for b in _COMFY_ATTENTIONS:
                    out[f"up_blocks.{x}.attentions.{i}.{b}"] = f"output_blocks.{n}.1.{b}"
                for t in range(num_transformers):
                    for b in _COMFY_TRANSFORMER:
                        out[f"up_blocks.{x}.attentions.{i}.transformer_blocks.{t}.{b}"] = (
                            f"output_blocks.{n}.1.transformer_blocks.{t}.{b}"
                        )
            if i == count - 1:
                for k in ("weight", "bias"):
                    out[f"up_blocks.{x}.upsamplers.0.conv.{k}"] = f"output_blocks.{n}.{c}.conv.{k}"
            n += 1
    for ldm, diffusers_key in _COMFY_BASIC:
        out[diffusers_key] = ldm
    return out


def comfy_key_map(family: ModelFamily, unet_config) -> dict[str, str]:
    """``model_lora_keys_unet`` + ``model_lora_keys_clip``: every LoRA module name ComfyUI resolves."""
    key_map = {}
    to_ldm = comfy_unet_to_diffusers(comfy_unet_config(unet_config))
    for ldm in to_ldm.values():  # the model's own state dict keys (diffusion_model.*)
        if ldm.endswith(".weight"):
            key_map["lora_unet_" + ldm[: -len(".weight")].replace(".", "_")] = ldm
    for diffusers_key, ldm in to_ldm.items():
        if diffusers_key.endswith(".weight"):
            key_map["lora_unet_" + diffusers_key[: -len(".weight")].replace(".", "_")] = ldm
    clips = {"clip_l": CLIP_L} if family is not ModelFamily.SDXL else {"clip_l": CLIP_L, "clip_g": CLIP_G}
    for b in range(32):
        for c, lora_c in _LORA_CLIP_MAP.items():
            if "clip_l" in clips and b < clips["clip_l"]["num_hidden_layers"]:
                key_map[f"lora_te_text_model_encoder_layers_{b}_{lora_c}"] = f"clip_l.{b}.{c}"
                key_map[f"lora_te1_text_model_encoder_layers_{b}_{lora_c}"] = f"clip_l.{b}.{c}"
            if "clip_g" in clips and b < clips["clip_g"]["num_hidden_layers"]:  # with clip_l present: SDXL
                key_map[f"lora_te2_text_model_encoder_layers_{b}_{lora_c}"] = f"clip_g.{b}.{c}"
    return key_map


def comfy_not_loaded(lora: dict[str, torch.Tensor], key_map: dict[str, str]) -> set[str]:
    """``comfy.lora.load_lora``'s "lora key not loaded" warnings, for regular LoRA keys."""
    loaded = set()
    for x in key_map:
        if f"{x}.lora_up.weight" in lora:
            loaded |= {f"{x}.lora_up.weight", f"{x}.lora_down.weight", f"{x}.alpha"}
    return set(lora) - loaded


# -- A1111 v1.10: extensions-builtin/Lora/networks.py ------------------------------------------------------------

_A1111_SUFFIX = {
    "attentions": {},
    "resnets": {
        "conv1": "in_layers_2",
        "conv2": "out_layers_3",
        "norm1": "in_layers_0",
        "norm2": "out_layers_0",
        "time_emb_proj": "emb_layers_1",
        "conv_shortcut": "skip_connection",
    },
}


def a1111_convert_diffusers_name_to_compvis(key: str, is_sd2: bool) -> str:
    def match(regex):
        r = re.match(regex, key)
        return [int(x) if re.match(r"\d+", x) else x for x in r.groups()] if r else None

    if m := match(r"lora_unet_conv_in(.*)"):
        return f"diffusion_model_input_blocks_0_0{m[0]}"
    if m := match(r"lora_unet_conv_out(.*)"):
        return f"diffusion_model_out_2{m[0]}"
    if m := match(r"lora_unet_time_embedding_linear_(\d+)(.*)"):
        return f"diffusion_model_time_embed_{m[0] * 2 - 2}{m[1]}"
    if m := match(r"lora_unet_down_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)"):
        suffix = _A1111_SUFFIX.get(m[1], {}).get(m[3], m[3])
        return f"diffusion_model_input_blocks_{1 + m[0] * 3 + m[2]}_{1 if m[1] == 'attentions' else 0}_{suffix}"
    if m := match(r"lora_unet_mid_block_(attentions|resnets)_(\d+)_(.+)"):
        suffix = _A1111_SUFFIX.get(m[0], {}).get(m[2], m[2])
        return f"diffusion_model_middle_block_{1 if m[0] == 'attentions' else m[1] * 2}_{suffix}"
    if m := match(r"lora_unet_up_blocks_(\d+)_(attentions|resnets)_(\d+)_(.+)"):
        suffix = _A1111_SUFFIX.get(m[1], {}).get(m[3], m[3])
        return f"diffusion_model_output_blocks_{m[0] * 3 + m[2]}_{1 if m[1] == 'attentions' else 0}_{suffix}"
    if m := match(r"lora_unet_down_blocks_(\d+)_downsamplers_0_conv"):
        return f"diffusion_model_input_blocks_{3 + m[0] * 3}_0_op"
    if m := match(r"lora_unet_up_blocks_(\d+)_upsamplers_0_conv"):
        return f"diffusion_model_output_blocks_{2 + m[0] * 3}_{2 if m[0] > 0 else 1}_conv"
    if m := match(r"lora_te_text_model_encoder_layers_(\d+)_(.+)"):
        if is_sd2:
            return f"model_transformer_resblocks_{m[0]}_{m[1].replace('self_attn', 'attn')}"
        return f"transformer_text_model_encoder_layers_{m[0]}_{m[1]}"
    if m := match(r"lora_te2_text_model_encoder_layers_(\d+)_(.+)"):
        if "mlp_fc1" in m[1]:
            return f"1_model_transformer_resblocks_{m[0]}_{m[1].replace('mlp_fc1', 'mlp_c_fc')}"
        if "mlp_fc2" in m[1]:
            return f"1_model_transformer_resblocks_{m[0]}_{m[1].replace('mlp_fc2', 'mlp_c_proj')}"
        return f"1_model_transformer_resblocks_{m[0]}_{m[1].replace('self_attn', 'attn')}"
    return key


def a1111_layer_mapping(family: ModelFamily, unet_config) -> set[str]:
    """``assign_network_names_to_compvis_modules``: A1111's module names (the original SD code's, "." as "_")."""
    ldm_weights = comfy_unet_to_diffusers(comfy_unet_config(unet_config)).values()
    names = {"diffusion_model_" + k.rsplit(".", 1)[0].replace(".", "_") for k in ldm_weights}
    clip_l = {f"text_model_encoder_layers_{b}_{c}" for b in range(12) for c in _LORA_CLIP_MAP.values()}
    if family is not ModelFamily.SDXL:
        return names | {f"transformer_{n}" for n in clip_l}
    names |= {f"0_transformer_{n}" for n in clip_l}
    for b in range(32):  # OpenCLIP: packed q/k/v in one MultiheadAttention
        names |= {f"1_model_transformer_resblocks_{b}_{p}" for p in ("attn", "attn_out_proj", "mlp_c_fc", "mlp_c_proj")}
    return names


def a1111_unmatched(lora: dict[str, torch.Tensor], mapping: set[str]) -> set[str]:
    """``load_network``'s ``keys_failed_to_match`` for our file."""
    is_sd2 = "model_transformer_resblocks" in mapping
    failed = set()
    for key_network in lora:
        stem, _, _part = key_network.partition(".")
        key = a1111_convert_diffusers_name_to_compvis(stem, is_sd2)
        found = key in mapping
        if not found and (m := re.match(r"(.*)_([qkv]_proj)$", key)):
            found = m.group(1) in mapping
        if not found and "lora_unet" in stem:
            found = stem.replace("lora_unet", "diffusion_model") in mapping
        elif not found and "lora_te1_text_model" in stem:
            found = stem.replace("lora_te1_text_model", "0_transformer_text_model") in mapping
            found = found or stem.replace("lora_te1_text_model", "transformer_text_model") in mapping
        if not found:
            failed.add(key_network)
    return failed


# -- kohya sd-scripts networks/lora.py: the modules create_network_from_weights makes --------------------------------


def kohya_module_names(family: ModelFamily, unet_config) -> set[str]:
    """sd-scripts names each LoRA module ``prefix + module path`` with "." as "_": its SD1 UNet mirrors diffusers'
    module names, its SDXL UNet (``sdxl_original_unet``) the original ones; text encoders ``lora_te`` (one) or
    ``lora_te1``/``lora_te2`` (SDXL)."""
    to_ldm = comfy_unet_to_diffusers(comfy_unet_config(unet_config))
    modules = to_ldm.values() if family is ModelFamily.SDXL else to_ldm.keys()
    names = {"lora_unet_" + k.rsplit(".", 1)[0].replace(".", "_") for k in modules}
    layers = {ModelFamily.SDXL: {"lora_te1": 12, "lora_te2": 32}}.get(family, {"lora_te": 12})
    for prefix, count in layers.items():
        names |= {f"{prefix}_text_model_encoder_layers_{b}_{c}" for b in range(count) for c in _LORA_CLIP_MAP.values()}
    return names


@pytest.mark.parametrize("family", [ModelFamily.SD1, ModelFamily.SDXL])
def test_every_lora_layer_of_a_full_size_model_is_found_by_kohya_a1111_and_comfyui(family):
    kohya, unet_config = full_size_lora(family, "all")
    modules = lora_modules(kohya)
    # SD1.5: 16 attention blocks x 10 + 22 resnets x 3-4 ...; SDXL's 70 transformer blocks: the count is real scale.
    assert len(modules) > (600 if family is ModelFamily.SDXL else 250)
    assert len(kohya) == 3 * len(modules)  # lora_down, lora_up, alpha
    assert not comfy_not_loaded(kohya, comfy_key_map(family, unet_config))
    assert not a1111_unmatched(kohya, a1111_layer_mapping(family, unet_config))
    missing = modules - kohya_module_names(family, unet_config)
    assert not missing, sorted(missing)[:5]
    text = {m.split("_text_model")[0] for m in modules if "_text_model_" in m}
    assert text == ({"lora_te1", "lora_te2"} if family is ModelFamily.SDXL else {"lora_te"})
    if family is ModelFamily.SDXL:  # the layer A1111 lost with diffusers' names: now under its original name
        assert "lora_unet_output_blocks_2_2_conv" in modules
        assert not any("up_blocks" in m or "down_blocks" in m for m in modules)
        # the same layer under diffusers' name is what A1111's SD1 table sends to a module SDXL does not have
        stray = {"lora_unet_up_blocks_0_upsamplers_0_conv.lora_up.weight": torch.zeros(1)}
        assert a1111_unmatched(stray, a1111_layer_mapping(family, unet_config)) == set(stray)


def test_sd1_text_encoder_keys_under_the_sdxl_prefix_are_what_kohya_would_drop():
    """The bug this pins: ``lora_te1_`` on an SD1 model names no module sd-scripts creates."""
    kohya, unet_config = full_size_lora(ModelFamily.SD1, "attention")
    names = kohya_module_names(ModelFamily.SD1, unet_config)
    renamed = {m.replace("lora_te_", "lora_te1_", 1) for m in lora_modules(kohya) if m.startswith("lora_te_")}
    assert renamed and not renamed & names


# -- the result folder of a real (tiny) run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pivotal_run(tmp_path_factory, drawings, tiny_sd1):
    ws = api.init(tmp_path_factory.mktemp("ws") / "unicorn", token="UnicornGirl", class_word="girl")
    api.prepare(ws, [drawings])
    options = dict(base=str(tiny_sd1), max_train_steps=2, train_token_embedding=True, train_text_encoder=True)
    return ws, api.train(
        ws, run="first", show_progress=False, **{**FAST, "validation_steps": 2, "validation_inference_steps": 2}, **options
    )


def test_files_carry_the_run_and_metadata_says_how_they_were_made(pivotal_run):
    ws, run = pivotal_run
    kohya_file = run.final_dir / "UnicornGirl-first.safetensors"
    assert exported_file(run.final_dir) == kohya_file
    with safe_open(str(kohya_file), "pt") as f:
        meta, keys = f.metadata(), list(f.keys())  # noqa: SIM118
    assert meta["ss_output_name"] == "UnicornGirl-first" and meta["charforge.trigger_word"] == "UnicornGirl"
    assert meta["modelspec.trigger_phrase"] == "UnicornGirl"
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora" and meta["modelspec.sai_model_spec"] == "1.0.1"
    assert meta["ss_base_model_version"] == "sd_v1" and meta["ss_v2"] == "False"
    assert meta["ss_sd_model_name"] == "tiny-sd1"
    assert float(meta["ss_training_started_at"]) <= float(meta["ss_training_finished_at"])
    assert json.loads(meta["ss_tag_frequency"]) == {"images": {"a picture of UnicornGirl girl": 4}}
    assert json.loads(meta["ss_dataset_dirs"]) == {"images": {"n_repeats": 1, "img_count": 4}}
    assert json.loads(meta["charforge.config"])["max_train_steps"] == 2
    assert meta["sshs_model_hash"] == tensor_data_sha256(kohya_file)  # kohya's and A1111's hash of the tensors
    assert "bundle_emb.UnicornGirl.string_to_param.*" in keys  # A1111 and Forge read the bundled embedding
    assert all(k.startswith(("lora_unet_", "lora_te_", "bundle_emb.")) for k in keys)


def test_embedding_file_is_read_by_a1111_comfyui_and_diffusers(pivotal_run, tiny_sd1):
    _, run = pivotal_run
    path = run.final_dir / "UnicornGirl-first_emb.safetensors"
    data = load_file(str(path))
    rows = load_file(str(run.final_dir / "token_embeddings.safetensors"))["text_encoder"]
    # A1111 v1.10 textual_inversion.create_embedding_from_data: no string_to_param, no clip_g/clip_l -> one tensor
    assert "string_to_param" not in data and len(data) == 1
    vectors = next(iter(data.values()))
    torch.testing.assert_close(vectors, rows)
    # ComfyUI sd1_clip.load_embed: string_to_param, else the embed key (clip_l), else the first tensor
    assert "clip_l" not in data and next(iter(data.values())).shape == rows.shape
    # diffusers, as the model card says
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd1))
    pipe.load_textual_inversion(str(path), token="UnicornGirl")
    assert "UnicornGirl" in pipe.tokenizer.get_vocab()


def test_sdxl_embedding_file_has_one_tensor_per_text_encoder():
    from charforge.models.kohya import embedding_tensors

    rows = {"text_encoder": torch.ones(2, 768), "text_encoder_2": torch.ones(2, 1280)}
    data = embedding_tensors(ModelFamily.SDXL, rows)
    assert set(data) == {"clip_l", "clip_g"}  # A1111's SDXL embedding branch and ComfyUI's embed keys
    assert data["clip_g"].shape[0] == data["clip_l"].shape[0]


def test_model_card_is_a_hub_card_with_the_trigger_word_and_the_sample_grid(pivotal_run):
    from huggingface_hub import ModelCard

    _, run = pivotal_run
    card = ModelCard.load(run.final_dir / "README.md")
    assert card.data.library_name == "diffusers" and card.data.license == "other"
    assert card.data.instance_prompt == "a picture of UnicornGirl girl"
    assert "lora" in card.data.tags and "template:sd-lora" in card.data.tags
    assert card.data.widget[0]["output"]["url"] == "samples.png" and (run.final_dir / "samples.png").is_file()
    assert card.data.base_model is None  # a local folder is not a Hub id
    for name in ("UnicornGirl-first.safetensors", "UnicornGirl-first_emb.safetensors", "pytorch_lora_weights.safetensors"):
        assert f"`{name}`" in card.text
    assert 'load_textual_inversion("path/to/this/folder/UnicornGirl-first_emb.safetensors", token="UnicornGirl")' in card.text


def test_push_uploads_the_result_folder_and_never_sees_the_token(pivotal_run, monkeypatch):
    """The upload itself needs the network: a stand-in for ``HfApi`` records what charforge asks of it."""
    from charforge.publish import files_to_push, push_folder

    _, run = pivotal_run
    files = files_to_push(run.final_dir)
    assert "README.md" in files and "samples.png" in files and "UnicornGirl-first.safetensors" in files
    assert not any(f.startswith(".") for f in files)
    calls = []

    class FakeHub:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kw):
            calls.append(("upload", kw["repo_id"], kw))

    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_used")
    url = push_folder(run.final_dir, "someone/unicorn", private=True, api=FakeHub())
    assert url == "https://huggingface.co/someone/unicorn"
    assert calls[0][2]["private"] is True and calls[1][2]["allow_patterns"] == files
    assert "hf_secret" not in json.dumps([c[2] for c in calls], default=str)
    from charforge.errors import CharforgeError

    with pytest.raises(CharforgeError, match="user/name"):
        push_folder(run.final_dir, "no-owner", api=FakeHub())


# -- PNG parameters -------------------------------------------------------------------------------------------------

_A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')  # infotext_utils.re_param_code


def a1111_parse(text: str) -> dict[str, str]:
    """The core of A1111 v1.10 ``parse_generation_parameters`` (prompt, negative prompt, fields; ``unquote``)."""
    res, prompt, negative, done = {}, "", "", False
    *lines, last = text.strip().split("\n")
    if len(_A1111_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done, line = True, line[16:].strip()
        if done:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for k, v in _A1111_PARAM.findall(last):
        if v and v[0] == '"' and v[-1] == '"':
            v = json.loads(v)
        res[k] = v
    res["Prompt"], res["Negative prompt"] = prompt, negative
    return res


def a1111_loras(prompt: str) -> dict[str, float]:
    """``modules/extra_networks.py`` ``re_extra_net`` + the Lora extension's ``<lora:NAME:te_multiplier>`` use."""
    return {
        args.split(":")[0]: float(args.split(":")[1]) for kind, args in re.findall(r"<(\w+):([^>]+)>", prompt) if kind == "lora"
    }


def a1111_lora_hashes(field: str) -> dict[str, str]:
    """The Lora extension's ``infotext_pasted``: ``name: hash`` pairs, the names as the prompt's tags call them."""
    pairs = [x.strip().split(":", 1) for x in field.split(",")]
    return {x[0].strip().replace(",", ""): x[1].strip() for x in pairs}


def test_png_parameters_restore_loras_model_and_hashes_in_a1111_and_sd_parsers(pivotal_run, tiny_sd1, tmp_path):
    from charforge.models.loading import model_name

    ws, run = pivotal_run
    spec = LoraSpec(run.final_dir, 0.7)
    result = api.generate(
        None,
        ["UnicornGirl girl, waving"],
        model=api.ModelChoice(base=str(tiny_sd1), loras=[spec]),
        negative_prompt="blurry, dark",
        sampler="dpm++2m-karras",
        steps=2,
        out_dir=tmp_path / "out",
    )
    with Image.open(result.images[0]) as image:
        text = image.info["parameters"]
    a1111 = a1111_parse(text)
    assert a1111["Negative prompt"] == "blurry, dark"
    assert a1111_loras(a1111["Prompt"]) == {"UnicornGirl-first": 0.7}  # the kohya file's name, as A1111 lists it
    kohya_file = run.final_dir / "UnicornGirl-first.safetensors"
    assert a1111_lora_hashes(a1111["Lora hashes"]) == {"UnicornGirl-first": tensor_data_sha256(kohya_file)[:12]}
    assert lora_hash(kohya_file) == tensor_data_sha256(kohya_file)[:12]
    assert a1111["Sampler"] == "DPM++ 2M" and a1111["Schedule type"] == "Karras"
    assert a1111["Model"] == model_name(str(tiny_sd1)) == "tiny-sd1" and a1111["Steps"] == "2"
    assert a1111["Version"].startswith("charforge ")

    from sd_parsers import ParserManager

    info = ParserManager().parse(result.images[0])
    sampler = info.samplers[0]
    assert sampler.name == "DPM++ 2M" and sampler.parameters["steps"] == "2"
    assert sampler.model.name == "tiny-sd1"
    assert "<lora:UnicornGirl-first:0.7>" in sampler.prompts[0].value
    assert sampler.negative_prompts[0].value == "blurry, dark"

    ours = read_png_params(result.images[0])  # charforge reads its own back: LoRAs apart from the prompt
    assert ours.prompt == "UnicornGirl girl, waving" and ours.loras == [("UnicornGirl-first", 0.7)]
    assert ours.sampler == "DPM++ 2M Karras"


def test_older_png_parameters_still_read():
    old = 'a girl\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 1, Size: 64x64, Model: m, Lora weights: "ti: 1, sks: 0.7"'
    params = GenerationParams.from_text(old)
    assert params.loras == [("ti", 1.0), ("sks", 0.7)] and params.prompt == "a girl"


# -- full models ----------------------------------------------------------------------------------------------------


def test_bf16_dreambooth_result_is_one_dtype_that_plain_diffusers_draws_and_is_named_after_the_run(workspace, tiny_sd1, tmp_path):
    from diffusers import StableDiffusionPipeline

    full_model = dict(base=str(tiny_sd1), method="dreambooth", show_progress=False, **FAST)
    run = api.train(workspace, run="full", max_train_steps=2, mixed_precision="bf16", save_single_file=True, **full_model)
    assert saved_dtypes(run.final_dir, "*/*.safetensors") == {torch.float32}  # unet/, text_encoder/, vae/
    assert saved_dtypes(run.final_dir, "*.safetensors") == {torch.float16}  # the single file, as shared ones are
    pipe = StableDiffusionPipeline.from_pretrained(str(run.final_dir))  # plain diffusers, nothing of charforge
    pipe.set_progress_bar_config(disable=True)
    pipe("a picture of UnicornGirl girl", num_inference_steps=2, height=32, width=32)  # no dtype mismatch
    result = api.generate(
        None, ["UnicornGirl girl"], model=api.ModelChoice(base=str(run.final_dir)), steps=2, out_dir=tmp_path / "out"
    )
    assert read_png_params(result.images[0]).model == "UnicornGirl-full"  # not "final"
    single = run.final_dir / "UnicornGirl-full.safetensors"  # A1111 would load this file: its hash is the model's
    assert read_png_params(result.images[0]).model_hash == file_sha256(single)[:10]
    from_file = api.generate(
        None, ["x"], model=api.ModelChoice(base=str(single), base_config=str(tiny_sd1)), steps=2, out_dir=tmp_path / "file"
    )
    params = read_png_params(from_file.images[0])
    assert (params.model, params.model_hash) == ("UnicornGirl-full", file_sha256(single)[:10])

    half = api.train(workspace, run="half", max_train_steps=1, save_dtype="fp16", **full_model)
    assert saved_dtypes(half.final_dir) == {torch.float16}


def saved_dtypes(folder, pattern: str = "**/*.safetensors") -> set[torch.dtype]:
    return {t.dtype for p in folder.glob(pattern) for t in load_file(str(p)).values()}


def test_push_without_a_result_is_a_one_line_error(workspace, capsys):
    from conftest import run_cli

    code, _out, err = run_cli("push", workspace.root, "--repo", "someone/unicorn", capsys=capsys)
    assert code == 2 and "no runs yet" in err and "Traceback" not in err


def test_sdxl_kohya_copy_in_original_names_loads_whole_back_into_diffusers(tmp_path):
    """charforge reads kohya files through diffusers too: the SDXL copy, in the original module names, must come back
    layer for layer (convolutions and the upsampler included)."""
    from charforge.models.lora import save_lora
    from charforge.models.tiny import build_tiny_pipeline

    trained = build_tiny_pipeline(ModelFamily.SDXL, seed=0)
    add_lora(trained.unet, 4, 8, UNET_TARGETS["all"])
    for name, param in trained.unet.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.05)
    save_lora(tmp_path, ModelFamily.SDXL, {"unet": trained.unet}, rank=4, alpha=8, targets="all", kohya=export_facts("xl"))
    keys = load_file(str(tmp_path / "xl.safetensors"))
    assert any(k.startswith("lora_unet_output_blocks_") and "_conv." in k for k in keys)  # the upsampler
    generator = torch.Generator().manual_seed(0)
    x, t = torch.randn(1, 4, 8, 8, generator=generator), torch.tensor([500])
    hidden = torch.randn(1, 77, 64, generator=generator)
    added = {"text_embeds": torch.randn(1, 32, generator=generator), "time_ids": torch.randn(1, 6, generator=generator)}
    with torch.no_grad():
        expected = trained.unet(x, t, hidden, added_cond_kwargs=added).sample
        fresh = build_tiny_pipeline(ModelFamily.SDXL, seed=0)
        assert (fresh.unet(x, t, hidden, added_cond_kwargs=added).sample - expected).abs().max() > 1e-2
        fresh.load_lora_weights(str(tmp_path / "xl.safetensors"))
        torch.testing.assert_close(fresh.unet(x, t, hidden, added_cond_kwargs=added).sample, expected, atol=1e-5, rtol=1e-4)
