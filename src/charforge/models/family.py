"""Model families (SD1.x, SD2.x, SDXL, SD3/3.5, FLUX.1, FLUX.2 klein, Chroma, Z-Image, Qwen-Image) and what differs between them.

Everything family-specific that the training loop needs sits behind the adapters in
:mod:`charforge.models.adapters`, so no loop branches on family.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ModelFamily(str, Enum):
    SD1 = "sd1"
    SD2 = "sd2"
    SDXL = "sdxl"
    SD3 = "sd3"
    FLUX = "flux"
    FLUX2 = "flux2"
    CHROMA = "chroma"
    ZIMAGE = "zimage"
    QWEN = "qwenimage"

    @property
    def label(self) -> str:
        return {
            "sd1": "SD1.x",
            "sd2": "SD2.x",
            "sdxl": "SDXL",
            "sd3": "SD3/3.5",
            "flux": "FLUX.1",
            "flux2": "FLUX.2 klein",
            "chroma": "Chroma",
            "zimage": "Z-Image",
            "qwenimage": "Qwen-Image",
        }[self.value]

    @property
    def denoiser(self) -> str:
        """The pipeline's name for the network that denoises: a UNet up to SDXL, a transformer (MMDiT) from SD3 on."""
        return "transformer" if self.flow_matching else "unet"

    @property
    def flow_matching(self) -> bool:
        """Trained as a rectified flow (velocity between noise and image), not as a DDPM noise predictor."""
        return self not in (ModelFamily.SD1, ModelFamily.SD2, ModelFamily.SDXL)

    @property
    def large_text_encoder(self) -> str:
        """The big text encoder a transformer family reads the prompt with, frozen in training."""
        qwen3 = "a Qwen3 language model"
        return {ModelFamily.ZIMAGE: qwen3, ModelFamily.FLUX2: qwen3, ModelFamily.QWEN: "a Qwen2.5-VL language model"}.get(
            self, "T5"
        )

    @property
    def has_clip(self) -> bool:
        """Reads the prompt through a CLIP text encoder too, the one --train-text-encoder trains (Chroma: T5 only;
        Z-Image, FLUX.2 klein and Qwen-Image: a Qwen language model)."""
        return self not in (ModelFamily.CHROMA, ModelFamily.ZIMAGE, ModelFamily.FLUX2, ModelFamily.QWEN)


SUPPORTED = ", ".join(f.label for f in ModelFamily)
# The transformer families by the pipeline class a diffusers folder's model_index.json names; any other pipeline
# without a UNet (FLUX.2 dev's Flux2Pipeline, HiDream, ...) is named in the error, so a user learns what was found.
_PIPELINE_FAMILY = {
    "StableDiffusion3Pipeline": ModelFamily.SD3,
    "FluxPipeline": ModelFamily.FLUX,
    "Flux2KleinPipeline": ModelFamily.FLUX2,
    "ChromaPipeline": ModelFamily.CHROMA,
    "ZImagePipeline": ModelFamily.ZIMAGE,
    "QwenImagePipeline": ModelFamily.QWEN,
}


def family_of_pipeline(index: dict[str, Any]) -> ModelFamily | None:
    """The family a ``model_index.json`` names outright, or None when its UNet must be read (SD1/SD2/SDXL).

    Raises ValueError naming the pipeline for a transformer family that is not supported."""
    name = str(index.get("_class_name", ""))
    if name in _PIPELINE_FAMILY:
        return _PIPELINE_FAMILY[name]
    if "unet" not in index:
        raise ValueError(f"it holds a {name or 'pipeline'} without a UNet; charforge supports {SUPPORTED}")
    return None


def detect_family(unet_config: dict[str, Any] | Any, *, has_second_text_encoder: bool = False) -> ModelFamily:
    """Read the family off a UNet config, the way the checkpoints differ structurally.

    SDXL conditions on size/crop "time ids" (``addition_embed_type='text_time'``) and has two text
    encoders; SD2.x uses linear projections in its transformer blocks and OpenCLIP (1024-d context);
    SD1.x has neither.
    """
    get = unet_config.get if isinstance(unet_config, dict) else lambda k, d=None: getattr(unet_config, k, d)
    if get("addition_embed_type") == "text_time" or has_second_text_encoder:
        return ModelFamily.SDXL
    if get("use_linear_projection", False) or get("cross_attention_dim") == 1024:
        return ModelFamily.SD2
    return ModelFamily.SD1


def detect_single_file_family(keys: set[str]) -> ModelFamily:
    """Family of an original-format (A1111/ComfyUI) checkpoint, from its tensor names."""
    if any(k.startswith("model.diffusion_model.joint_blocks.") for k in keys):
        return ModelFamily.SD3  # the MMDiT's joint (image + text) blocks
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return ModelFamily.SDXL
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return ModelFamily.SD2
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return ModelFamily.SD1
    if any(k.startswith(("distilled_guidance_layer.", "model.diffusion_model.distilled_guidance_layer.")) for k in keys):
        return ModelFamily.CHROMA  # FLUX's blocks with the modulation approximator that replaced its guidance/CLIP inputs
    if {"layers.0.adaLN_modulation.0.weight", "model.diffusion_model.layers.0.adaLN_modulation.0.weight"} & keys:
        return ModelFamily.ZIMAGE  # the single-stream DiT's first block, as diffusers' single-file loader tells it
    if {"single_stream_modulation.lin.weight", "model.diffusion_model.single_stream_modulation.lin.weight"} & keys:
        # FLUX.2's transformer, as BFL and ComfyUI ship it: its shared modulations set it apart from FLUX.1's blocks
        raise ValueError(
            "it holds a FLUX.2 transformer alone; give the diffusers folder or hub id (black-forest-labs/FLUX.2-klein-4B)"
        )
    if any(k.endswith("img_mod.1.weight") for k in keys):  # Qwen-Image's MMDiT, as ComfyUI ships it: the transformer alone
        raise ValueError("it holds a Qwen-Image transformer alone; give the diffusers folder or hub id (Qwen/Qwen-Image)")
    if any(k.startswith(("double_blocks.", "model.diffusion_model.double_blocks.")) for k in keys):
        return ModelFamily.FLUX  # FLUX's double-stream blocks (BFL's own names, as ComfyUI ships them)
    raise ValueError("no Stable Diffusion text-encoder weights found")
