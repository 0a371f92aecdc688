"""Write a diffusers Stable Diffusion pipeline as one original-format (LDM) ``.safetensors`` file.

A1111 and ComfyUI load full models as single files with the original CompVis key names. diffusers
converts those *to* diffusers (``from_single_file``); this is the other direction, derived from the
UNet and VAE configs so any block layout converts (the SD1.5 one, and our tiny test models alike).
Text encoder: SD1.x's CLIP-L only; SD2.x/SDXL store OpenCLIP weights with packed q/k/v, not done yet.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import atomic
from ..errors import CharforgeError
from .family import ModelFamily

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."
_UNET_RESNET = {
    "norm1.": "in_layers.0.",
    "conv1.": "in_layers.2.",
    "norm2.": "out_layers.0.",
    "conv2.": "out_layers.3.",
    "time_emb_proj.": "emb_layers.1.",
    "conv_shortcut.": "skip_connection.",
}
_VAE_ATTENTION = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}


def _unet_prefixes(config) -> tuple[dict[str, str], set[str]]:
    """diffusers prefix -> LDM prefix, and which of them are resnets (their insides are renamed too)."""
    n, per = len(config["block_out_channels"]), config["layers_per_block"]
    down_attn = [t.startswith("CrossAttn") for t in config["down_block_types"]]
    up_attn = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    prefixes = {
        "time_embedding.linear_1.": "time_embed.0.",
        "time_embedding.linear_2.": "time_embed.2.",
        "add_embedding.linear_1.": "label_emb.0.0.",
        "add_embedding.linear_2.": "label_emb.0.2.",
        "conv_in.": "input_blocks.0.0.",
        "conv_norm_out.": "out.0.",
        "conv_out.": "out.2.",
        "mid_block.attentions.0.": "middle_block.1.",
        "mid_block.resnets.0.": "middle_block.0.",
        "mid_block.resnets.1.": "middle_block.2.",
    }
    resnets = {"mid_block.resnets.0.", "mid_block.resnets.1."}
    for i in range(n):
        for j in range(per):  # LDM input block k = (per+1)*i + j + 1; every (per+1)-th one is a downsampler
            block = (per + 1) * i + j + 1
            prefixes[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{block}.0."
            resnets.add(f"down_blocks.{i}.resnets.{j}.")
            if down_attn[i]:
                prefixes[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{block}.1."
        if i < n - 1:
            prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(per + 1) * (i + 1)}.0.op."
        for j in range(per + 1):
            block = (per + 1) * i + j
            prefixes[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{block}.0."
            resnets.add(f"up_blocks.{i}.resnets.{j}.")
            if up_attn[i]:
                prefixes[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{block}.1."
        if i < n - 1:  # the upsampler sits after the block's last resnet (and attention, if any)
            prefixes[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{(per + 1) * i + per}.{2 if up_attn[i] else 1}."
    return prefixes, resnets


def _vae_prefixes(config) -> tuple[dict[str, str], set[str]]:
    n, per = len(config["block_out_channels"]), config["layers_per_block"]
    prefixes = {"encoder.conv_norm_out.": "encoder.norm_out.", "decoder.conv_norm_out.": "decoder.norm_out."}
    attentions = set()
    for part in ("encoder", "decoder"):
        for k in range(2):
            prefixes[f"{part}.mid_block.resnets.{k}."] = f"{part}.mid.block_{k + 1}."
        prefixes[f"{part}.mid_block.attentions.0."] = f"{part}.mid.attn_1."
        attentions.add(f"{part}.mid_block.attentions.0.")
    for i in range(n):
        for j in range(per):
            prefixes[f"encoder.down_blocks.{i}.resnets.{j}."] = f"encoder.down.{i}.block.{j}."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        for j in range(per + 1):  # the decoder's up blocks are numbered from the bottom in LDM
            prefixes[f"decoder.up_blocks.{i}.resnets.{j}."] = f"decoder.up.{n - 1 - i}.block.{j}."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{n - 1 - i}.upsample."
    return prefixes, attentions


def _rename(state: dict[str, torch.Tensor], prefixes: dict[str, str], inner: set[str], inner_map: dict[str, str]):
    ordered = sorted(prefixes, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        prefix = next((p for p in ordered if key.startswith(p)), None)
        rest = key[len(prefix) :] if prefix else key
        if prefix in inner:
            for old, new in inner_map.items():
                if rest.startswith(old):
                    rest = new + rest[len(old) :]
                    break
        out[(prefixes[prefix] if prefix else "") + rest] = value
    return out


def ldm_unet_names(state: dict[str, torch.Tensor], unet_config) -> dict[str, torch.Tensor]:
    """``state`` (UNet keys in diffusers' names, weights or LoRA matrices alike) renamed to the original (LDM/SGM) ones.

    kohya's SDXL LoRA files use these names: A1111 and ComfyUI find every SDXL module by them, where diffusers'
    names map through per-program tables that miss some layers.
    """
    prefixes, resnets = _unet_prefixes(unet_config)
    return _rename(state, prefixes, resnets, _UNET_RESNET)


def to_ldm_state_dict(pipe, family: ModelFamily) -> dict[str, torch.Tensor]:
    if family is not ModelFamily.SD1:
        raise CharforgeError(f"single-file export supports SD1.x models for now, not {family.label}; use the diffusers folder")
    unet = ldm_unet_names(pipe.unet.state_dict(), pipe.unet.config)
    vae_prefixes, vae_attentions = _vae_prefixes(pipe.vae.config)
    vae_state = {k.replace("conv_shortcut.", "nin_shortcut."): v for k, v in pipe.vae.state_dict().items()}
    vae = _rename(vae_state, vae_prefixes, vae_attentions, _VAE_ATTENTION)
    for key, value in vae.items():  # LDM's VAE attention uses 1x1 convolutions where diffusers has linears
        if ".mid.attn_1." in key and key.endswith((".q.weight", ".k.weight", ".v.weight", ".proj_out.weight")):
            vae[key] = value[:, :, None, None]
    text = {(k if k.startswith("text_model.") else f"text_model.{k}"): v for k, v in pipe.text_encoder.state_dict().items()}
    state = {UNET_PREFIX + k: v for k, v in unet.items()}
    state.update({VAE_PREFIX + k: v for k, v in vae.items()})
    state.update({TEXT_PREFIX + k: v for k, v in text.items()})
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_single_file(pipe, family: ModelFamily, path: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write the pipeline as one LDM-format file (fp16 by default, as shared checkpoints are)."""
    from safetensors.torch import save_file

    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in to_ldm_state_dict(pipe, family).items()}
    with atomic.atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "modelspec.architecture": family.label})
    return path
