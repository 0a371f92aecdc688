"""Validated configs. Unknown keys are errors: a misspelt option must never silently fall back.

YAML files passed with ``--config`` use the same keys as the CLI flags (with ``_`` or ``-``).
Each run stores its resolved :class:`TrainConfig` as ``config.yaml`` so any result can be reproduced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import CharforgeError
from .options import read_yaml
from .options import validate as validate_config

Method = Literal["dreambooth-lora", "lora", "dreambooth"]
Precision = Literal["auto", "no", "fp16", "bf16"]
LoraTargets = Literal["attention", "transformer", "all"]
TimestepSampling = Literal["logit_normal", "mode", "uniform"]
LrScheduler = Literal["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"]

# Presets are complete, named settings that a flag selects; explicit flags still override them.
PRESETS: dict[str, dict[str, Any]] = {
    # The thesis' best DreamBooth+LoRA setting on SDXL: lr 1e-4, ~1800 steps, 1024 px.
    "thesis-sdxl": {
        "method": "dreambooth-lora",
        "learning_rate": 1e-4,
        "max_train_steps": 1800,
        "resolution": 1024,
        "checkpointing_steps": 100,
        "validation_inference_steps": 50,
    },
}


class TrainConfig(BaseModel):
    """Everything a training run depends on."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base: str = Field(description="Base model: hub id, local diffusers folder, or single-file .safetensors.")
    base_config: str | None = Field(
        None, description="Diffusers folder/hub id with the configs for a single-file base (needed offline)."
    )
    method: Method = Field(
        "dreambooth-lora", description="dreambooth-lora (default), lora (per-image captions), or dreambooth (full UNet)."
    )
    instance_prompt: str = Field(
        "a picture of {token} {class_word}",
        description="Prompt for every training image; {token} and {class_word} are filled in.",
    )
    captions: bool | None = Field(
        None,
        description="Describe each image by its own caption (captions/NAME.txt); default: yes for lora, no for the "
        "DreamBooth methods, which use the instance prompt. DreamBooth captions must name the token.",
    )
    resolution: int | None = Field(None, ge=8, description="Training resolution in pixels; default: the family's native size.")
    train_batch_size: int = Field(1, ge=1, description="Images per step (all of one aspect-ratio bucket).")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Steps whose gradients add up before one update (effective batch = batch x this)."
    )
    learning_rate: float = Field(1e-4, gt=0, description="Learning rate of the UNet (its LoRA, or all of it for dreambooth).")
    text_encoder_lr: float | None = Field(
        None, gt=0, description="Learning rate of the text encoder (its LoRA, or all of it for dreambooth); default: the UNet's."
    )
    lr_scheduler: LrScheduler = Field(
        "constant",
        description="Learning-rate schedule (diffusers' get_scheduler): constant, constant_with_warmup, linear, cosine, ...",
    )
    lr_warmup_steps: int = Field(0, ge=0, description="Steps over which the learning rate rises from 0.")
    max_train_steps: int = Field(500, ge=1, description="Optimizer steps to train for.")
    rank: int = Field(4, ge=1, description="LoRA rank.")
    lora_alpha: float | None = Field(None, gt=0, description="LoRA alpha; default: the rank (scale 1).")
    lora_targets: LoraTargets = Field(
        "attention",
        description="Layers with LoRA: attention (diffusers), transformer (kohya's default), all (+ ResNet convs, LoCon).",
    )
    train_text_encoder: bool = Field(
        False,
        description="Also train the text encoder(s): LoRA for the LoRA methods, the whole encoder for dreambooth "
        "(as the DreamBooth paper; the identifier's embedding learns too).",
    )
    train_token_embedding: bool = Field(
        False,
        description="LoRA methods: also train the identifier's input embedding, every other word frozen (pivotal "
        "tuning, diffusers' --train_text_encoder_ti); saved beside the LoRA. Needed where the base never learnt the token.",
    )
    seed: int = Field(0, description="Seed of the LoRA init, the data order and the noise: the same seed trains the same.")
    mixed_precision: Precision = Field(
        "auto",
        description="auto: bf16 on CUDA where supported (else fp16), bf16 on CPUs with native bf16, else fp32; "
        "no: fp32; bf16 (any CPU or GPU); fp16 (CUDA only).",
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass: less memory, slower.")
    snr_gamma: float | None = Field(None, gt=0, description="Min-SNR loss weighting gamma (5.0 is the paper's choice).")
    timestep_sampling: TimestepSampling | None = Field(
        None,
        description="Flow-matching models (SD3): how noise levels are drawn, logit_normal (default, the SD3 paper's), "
        "mode or uniform; UNet models always draw uniformly.",
    )
    noise_offset: float = Field(0.0, ge=0, description="Offset noise (e.g. 0.05) so very dark or bright pictures can be learnt.")
    masked_loss: bool = Field(
        False,
        description="Weight the loss by each picture's subject (the character apart from a flat background, as prepare "
        "finds it), so the background is not taught with the character; pictures on a busy background keep full weight.",
    )
    unmasked_weight: float = Field(
        0.0, ge=0, le=1, description="With --masked-loss: the weight of the background (0: not learnt at all)."
    )
    use_8bit_adam: bool = Field(False, description="bitsandbytes AdamW8bit (CUDA only).")
    adam_beta1: float = Field(0.9, description="AdamW beta1.")
    adam_beta2: float = Field(0.999, description="AdamW beta2.")
    adam_weight_decay: float = Field(1e-2, description="AdamW weight decay (never on the identifier's embedding rows).")
    adam_epsilon: float = Field(1e-8, description="AdamW epsilon.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradients are clipped to this norm.")
    cache_latents: bool = Field(True, description="Encode training images with the VAE once, not every step.")
    cache_text_embeddings: bool = Field(True, description="Encode prompts once when the text encoder is frozen.")
    checkpointing_steps: int = Field(100, ge=1, description="Write a resumable checkpoint every N steps.")
    checkpoints_total_limit: int | None = Field(None, ge=1, description="Keep only the newest N checkpoints.")
    validation_steps: int = Field(100, ge=0, description="Sample validation images every N steps (0: never).")
    validation_prompts: list[str] = Field(
        default_factory=lambda: ["a picture of {token} {class_word}"], description="Prompts of the validation grids (repeat)."
    )
    validation_seeds: list[int] = Field(default_factory=lambda: [0, 1], description="Seeds of the validation grids (repeat).")
    validation_inference_steps: int = Field(25, ge=1, description="Inference steps of each validation picture.")
    eval_every: int = Field(
        0, ge=0, description="Score the run every N steps as `evaluate` does, on a small prompt set (0: never)."
    )
    eval_prompts: str | None = Field(None, description="Prompt set file of --eval-every; default: the one `evaluate` uses.")
    eval_prompts_count: int = Field(6, ge=1, description="--eval-every draws this many of its prompts.")
    eval_seeds_count: int = Field(1, ge=1, description="--eval-every draws each of them on this many of the set's seeds.")
    eval_inference_steps: int = Field(25, ge=1, description="Inference steps of each --eval-every picture.")
    stop_when_plateau: int = Field(
        0,
        ge=0,
        description="With --eval-every: stop when K evaluations in a row did not beat the best, which becomes final/ (0: off).",
    )
    prior_preservation: bool = Field(
        False, description="Also train on class images the base draws, so the class word keeps its meaning."
    )
    class_prompt: list[str] | None = Field(
        None,
        description="Prompt for class images; repeat for several (the class images are shared out among them, e.g. the "
        "scenes of the captions without the token); default 'a picture of a {class_word}'.",
    )
    num_class_images: int = Field(100, ge=1, description="Class images for prior preservation (drawn once, cached).")
    prior_loss_weight: float = Field(1.0, ge=0, description="Weight of the class images' loss.")
    class_inference_steps: int = Field(25, ge=1, description="Inference steps of each class image.")
    save_kohya: bool = Field(
        True, description="Also write a kohya-format LoRA (and the identifier's embedding) for A1111, Forge, ComfyUI."
    )
    save_dtype: Literal["fp32", "fp16", "bf16"] | None = Field(
        None,
        description="Precision of the saved result, one for every part; default fp32 (fp16 for the single file).",
    )
    license: str | None = Field(
        None, description="Licence of the result for its model card (e.g. creativeml-openrail-m); default: the base's."
    )
    save_single_file: bool = Field(
        False, description="dreambooth: also write the model as one A1111/ComfyUI .safetensors (SD1.x)."
    )
    allow_unsafe_pickle: bool = Field(False, description="Allow loading .ckpt/.bin/.pt pickles (can run code).")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.save_single_file and self.method != "dreambooth":
            raise ValueError("save_single_file is for --method dreambooth; LoRA methods already write a kohya file")
        if self.stop_when_plateau and not self.eval_every:
            raise ValueError("stop_when_plateau needs eval_every N: the run is scored every N steps to see a plateau")
        if self.eval_every and self.checkpoints_total_limit:
            raise ValueError("eval_every keeps the best checkpoint to make it final/; drop checkpoints_total_limit")
        if self.train_token_embedding and self.method == "dreambooth":
            raise ValueError(
                "train_token_embedding is for the LoRA methods; dreambooth with train_text_encoder trains every embedding"
            )
        return self

    @field_validator("class_prompt", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def prompt(self, template: str, token: str, class_word: str) -> str:
        return template.format(token=token, class_word=class_word)

    @property
    def uses_captions(self) -> bool:
        return self.captions if self.captions is not None else self.method == "lora"

    @property
    def alpha(self) -> float:
        return float(self.lora_alpha if self.lora_alpha is not None else self.rank)


def build_train_config(
    *, config_file: str | Path | None = None, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Preset, then the YAML file, then explicit flags (``None`` means "not given")."""
    values: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise CharforgeError(f"--preset {preset!r} is unknown; choose from: {', '.join(PRESETS)}")
        values.update(PRESETS[preset])
    source = "options"
    if config_file:
        values.update(read_yaml(config_file))
        source = str(config_file)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if not values.get("base"):
        where = f" (or base: in {config_file})" if config_file else ""
        raise CharforgeError(
            f"train needs a base model: --base ID|FOLDER|FILE.safetensors{where} (the mini world's model: --base world)"
        )
    return validate_config(TrainConfig, values, source)


def dump_config(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
