"""kohya-format LoRA and embedding files, as A1111, Forge, ComfyUI and kohya's own sd-scripts read them.

Key names follow kohya's conventions, which each of those programs resolves with its own rules:

* UNet: ``lora_unet_<module path with "_">``, in diffusers' module names for SD 1.x/2.x (kohya trains those on a
  diffusers-shaped UNet) and in the original (SGM) names for SDXL (kohya's ``sdxl_original_unet``). A1111 maps
  diffusers-named SDXL keys through an SD1 table and loses ``up_blocks.0.upsamplers.0.conv``; original names are
  found directly by A1111 and ComfyUI alike.
* Text encoders: ``lora_te_`` for a model with one (SD 1.x/2.x), ``lora_te1_`` / ``lora_te2_`` for SDXL's two.
  sd-scripts creates no text-encoder module for ``lora_te1_`` keys on an SD1 model and drops them silently.
* Per module ``.lora_down.weight``, ``.lora_up.weight`` and ``.alpha`` (scale = alpha / rank).

The metadata carries what kohya's ``train_network.py`` writes (``ss_*``), the training's own facts (trigger word,
base model name and hash, dates, dataset tags, the resolved config) and ModelSpec's standard ids
(``library/sai_model_spec.py`` in sd-scripts is the reference).

A pivotal-tuned identifier's embedding is bundled into the LoRA (``bundle_emb.*``, read by A1111 and Forge) and
also written as its own textual-inversion file, for ComfyUI, which ignores bundled embeddings.
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__, atomic
from .family import ModelFamily
from .hashes import tensor_bytes_sha256

_BASE_VERSION = {ModelFamily.SD1: "sd_v1", ModelFamily.SD2: "sd_v2", ModelFamily.SDXL: "sdxl_base_v1-0"}
_TEXT_PREFIX = {
    False: {"text_encoder": "lora_te"},  # one text encoder
    True: {"text_encoder": "lora_te1", "text_encoder_2": "lora_te2"},
}
_PEFT_PART = {"lora_A": "lora_down", "lora_B": "lora_up"}


@dataclass
class TrainingFacts:
    """How a result was made, as its files record it (kohya's ``ss_*`` metadata, ModelSpec, the model card)."""

    output_name: str  # the kohya file's stem, which A1111 and ComfyUI show and ``<lora:NAME:w>`` names
    token: str
    class_word: str
    trigger_prompt: str  # the instance prompt with the identifier, e.g. "a picture of UnicornGirl girl"
    base_source: str
    base_name: str
    base_hash: str  # A1111's "Model hash" of the base when it is one file, else ""
    method: str
    resolution: int
    steps: int
    started_at: float  # unix time
    finished_at: float
    precision: str
    prediction_type: str  # "epsilon" or "v_prediction"
    dataset_dir: str
    image_count: int
    class_image_count: int
    captions: list[str] = field(default_factory=list)  # the prompt each training image was trained with
    config: dict = field(default_factory=dict)  # the resolved training config

    def tag_frequency(self) -> dict[str, int]:
        """kohya's count of comma-separated caption tags (A1111's "training dataset tags" panel)."""
        return dict(Counter(tag.strip() for caption in self.captions for tag in caption.split(",") if tag.strip()))

    def architecture(self, family: ModelFamily, adapter: str) -> str:
        """ModelSpec's id: ``stable-diffusion-v1/lora``, ``stable-diffusion-xl-v1-base/textual-inversion``, ..."""
        base = {
            ModelFamily.SD1: "stable-diffusion-v1",
            ModelFamily.SD2: "stable-diffusion-v2-768-v" if self.prediction_type == "v_prediction" else "stable-diffusion-v2-512",
            ModelFamily.SDXL: "stable-diffusion-xl-v1-base",
        }[family]
        return f"{base}/{adapter}" if adapter else base

    def modelspec(self, family: ModelFamily, adapter: str) -> dict[str, str]:
        sgm = family is ModelFamily.SDXL or adapter == "textual-inversion"
        return {
            "modelspec.sai_model_spec": "1.0.1",
            "modelspec.architecture": self.architecture(family, adapter),
            "modelspec.implementation": "https://github.com/Stability-AI/generative-models" if sgm else "diffusers",
            "modelspec.implementation_version": f"charforge/{__version__}",
            "modelspec.title": self.output_name,
            "modelspec.resolution": f"{self.resolution}x{self.resolution}",
            "modelspec.date": datetime.datetime.fromtimestamp(int(self.finished_at)).isoformat(),
            "modelspec.trigger_phrase": self.token,
            "modelspec.usage_hint": f'Write {self.token} in the prompt, e.g. "{self.trigger_prompt}"',
            "modelspec.prediction_type": "v" if self.prediction_type == "v_prediction" else "epsilon",
            "modelspec.description": f"{self.token} ({self.class_word}), taught by charforge with {self.method}",
        }


def kohya_state_dict(
    layers: dict[str, dict[str, torch.Tensor]], family: ModelFamily, unet_config, alpha: float
) -> dict[str, torch.Tensor]:
    """PEFT LoRA matrices per module (``unet``, ``text_encoder``, ``text_encoder_2``) under kohya's key names."""
    from .single_file import ldm_unet_names

    text_prefix = _TEXT_PREFIX[family is ModelFamily.SDXL]
    out: dict[str, torch.Tensor] = {}
    for name, state in layers.items():
        if name == "unet":
            prefix = "lora_unet"
            if family is ModelFamily.SDXL:
                state = ldm_unet_names(state, unet_config)
        elif name in text_prefix:
            prefix = text_prefix[name]
        else:
            raise ValueError(f"no kohya name for LoRA layers of {name}")
        for key, value in state.items():
            module, part, _weight = key.rsplit(".", 2)
            stem = f"{prefix}_{module.replace('.', '_')}"
            out[f"{stem}.{_PEFT_PART[part]}.weight"] = value
            out[f"{stem}.alpha"] = torch.tensor(float(alpha))
    return out


def lora_metadata(facts: TrainingFacts, family: ModelFamily, *, rank: int, alpha: float, targets: str) -> dict[str, str]:
    """kohya's ``ss_*`` keys (those A1111's Lora pages and civitai read), ModelSpec, and charforge's config."""
    config = facts.config
    text_lr = config.get("text_encoder_lr") or config.get("learning_rate")
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(alpha),
        "ss_network_dropout": str(config.get("lora_dropout", 0.0)),
        "ss_base_model_version": _BASE_VERSION[family],
        "ss_v2": str(family is ModelFamily.SD2),
        "ss_v_parameterization": str(facts.prediction_type == "v_prediction"),
        "ss_output_name": facts.output_name,
        "ss_sd_model_name": facts.base_name,
        "ss_clip_skip": "None" if family is ModelFamily.SDXL else "1",  # SDXL's penultimate layer is its own default
        "ss_training_started_at": str(facts.started_at),
        "ss_training_finished_at": str(facts.finished_at),
        "ss_steps": str(facts.steps),
        "ss_max_train_steps": str(config.get("max_train_steps", facts.steps)),
        "ss_learning_rate": str(config.get("learning_rate")),
        "ss_unet_lr": str(config.get("learning_rate")),
        "ss_text_encoder_lr": str(text_lr if config.get("train_text_encoder") else 0.0),
        "ss_lr_scheduler": str(config.get("lr_scheduler")),
        "ss_lr_warmup_steps": str(config.get("lr_warmup_steps")),
        "ss_seed": str(config.get("seed")),
        "ss_mixed_precision": facts.precision,
        "ss_resolution": f"({facts.resolution}, {facts.resolution})",
        "ss_batch_size_per_device": str(config.get("train_batch_size")),
        "ss_gradient_accumulation_steps": str(config.get("gradient_accumulation_steps")),
        "ss_gradient_checkpointing": str(config.get("gradient_checkpointing")),
        "ss_min_snr_gamma": str(config.get("snr_gamma")),
        "ss_noise_offset": str(config.get("noise_offset")),
        "ss_prior_loss_weight": str(config.get("prior_loss_weight")),
        "ss_num_train_images": str(facts.image_count),
        "ss_num_reg_images": str(facts.class_image_count),
        "ss_dataset_dirs": json.dumps({facts.dataset_dir: {"n_repeats": 1, "img_count": facts.image_count}}),
        "ss_tag_frequency": json.dumps({facts.dataset_dir: facts.tag_frequency()}),
        "ss_training_comment": f"trigger word: {facts.token}",
        "charforge.version": __version__,
        "charforge.method": facts.method,
        "charforge.trigger_word": facts.token,
        "charforge.base_model": facts.base_source,
        "charforge.config": json.dumps(config, sort_keys=True, default=str),
    }
    if targets == "all":  # LoCon: convolutions carry LoRA too (kohya's conv_dim / conv_alpha)
        meta["ss_network_args"] = json.dumps({"conv_dim": str(rank), "conv_alpha": str(alpha)})
    if facts.base_hash:
        meta["ss_new_sd_model_hash"] = facts.base_hash
    meta.update(facts.modelspec(family, "lora"))
    return meta


def save_with_hash(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    """Write ``tensors`` atomically with ``metadata`` plus kohya's ``sshs_model_hash`` of the tensor data."""
    from safetensors.torch import save, save_file

    contiguous = {k: v.contiguous() for k, v in tensors.items()}
    data_hash = tensor_bytes_sha256(save(contiguous))  # the tensor bytes do not depend on the header
    with atomic.atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata={**metadata, "sshs_model_hash": data_hash})
    return path


def embedding_tensors(family: ModelFamily, rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The textual-inversion layout both A1111 and ComfyUI load: ``clip_l`` / ``clip_g`` for SDXL, one tensor
    (kohya's ``emb_params``) for SD 1.x/2.x."""
    if family is ModelFamily.SDXL:
        return {"clip_l": rows["text_encoder"], "clip_g": rows["text_encoder_2"]}
    return {"emb_params": rows["text_encoder"]}


def save_embedding(path: Path, facts: TrainingFacts, family: ModelFamily, rows: dict[str, torch.Tensor]) -> Path:
    tensors = {k: v.detach().float().cpu() for k, v in embedding_tensors(family, rows).items()}
    metadata = {**facts.modelspec(family, "textual-inversion"), "charforge.trigger_word": facts.token}
    return save_with_hash(tensors, path, metadata)
