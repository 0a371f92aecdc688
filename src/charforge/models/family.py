"""Model families (SD1.x, SD2.x, SDXL) and what differs between them.

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

    @property
    def label(self) -> str:
        return {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL"}[self.value]


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
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return ModelFamily.SDXL
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return ModelFamily.SD2
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return ModelFamily.SD1
    raise ValueError("no Stable Diffusion text-encoder weights found")
