"""Training methods differ in which parameters train and how results are saved, not in the loop.

* ``dreambooth-lora``: LoRA on the UNet attention (and optionally text encoders); every image is
  described by the instance prompt with the identifier.
* ``lora``: the same adapters, but each image is described by its own caption (style training).
* ``dreambooth``: the whole UNet trains (and, with ``train_text_encoder``, the whole text encoder, so
  the identifier's embedding learns as in the DreamBooth paper); the result is a full diffusers model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import TrainConfig
from ..models.adapters import FamilyAdapter
from ..models.family import ModelFamily
from ..models.kohya import TrainingFacts
from ..models.lora import TEXT_ENCODER_TARGETS, add_lora, denoiser_targets, load_lora_into, save_lora
from ..models.single_file import save_single_file
from ..models.token_embeddings import (
    enable_token_training,
    put_rows,
    read_token_embeddings,
    save_token_embeddings,
    token_ids,
)


@dataclass
class Trainable:
    """The modules that train under a method and how to save / restore them."""

    method: str
    family: ModelFamily
    modules: dict[str, torch.nn.Module]  # name in the pipeline -> module (unwrapped)
    rank: int = 0
    alpha: float = 0.0
    targets: str = "attention"
    token: str = ""
    # pivotal tuning: text encoder name -> (its embedding table, the identifier's rows in it)
    token_tables: dict[str, tuple[torch.nn.Parameter, list[int]]] = field(default_factory=dict)

    @property
    def uses_lora(self) -> bool:
        return self.method != "dreambooth"

    @property
    def denoiser_name(self) -> str:
        return self.family.denoiser

    @property
    def trains_text_encoder(self) -> bool:
        return any(name != self.denoiser_name for name in self.modules) or bool(self.token_tables)

    def parameters(self, name: str) -> list[torch.nn.Parameter]:
        """What trains in module ``name``, without the embedding tables (see :meth:`token_parameters`)."""
        tables = {id(table) for table, _ in self.token_tables.values()}
        return [p for p in self.modules[name].parameters() if p.requires_grad and id(p) not in tables]

    def token_parameters(self) -> list[torch.nn.Parameter]:
        return [table for table, _ in self.token_tables.values()]

    def save(
        self,
        folder: Path,
        *,
        pipe=None,
        facts: TrainingFacts | None = None,
        kohya: bool = False,
        single_file: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Weights for a checkpoint (``pipe`` and ``facts`` None) or a final result: a LoRA's files, or the full
        pipeline for dreambooth, all in one ``dtype`` (None: fp32, and fp16 for the single file as shared
        checkpoints are); with ``facts``, the copies other programs load
        (``kohya``: the kohya LoRA and embedding, ``single_file``: the one-file checkpoint), named after
        ``facts.output_name``."""
        if self.uses_lora:
            rows = {name: table[ids] for name, (table, ids) in self.token_tables.items()}
            save_lora(
                folder,
                self.family,
                self.modules,
                rank=self.rank,
                alpha=self.alpha,
                targets=self.targets,
                kohya=facts if kohya else None,
                token_rows=(self.token, rows) if rows else None,
                dtype=dtype or torch.float32,
            )
            if rows:
                save_token_embeddings(folder, self.token, rows)
        elif pipe is not None:
            pipe.to(
                dtype=dtype or torch.float32
            )  # one dtype throughout: plain diffusers cannot draw with a bf16 encoder and fp32 UNet
            pipe.save_pretrained(folder, safe_serialization=True)
            if single_file and facts is not None:
                save_single_file(pipe, self.family, folder / f"{facts.output_name}.safetensors", dtype=dtype or torch.float16)
        else:  # a DreamBooth checkpoint: only what trains, in the pipeline's folder names
            for name, module in self.modules.items():
                module.save_pretrained(folder / name)  # safetensors in diffusers and transformers alike

    def load(self, folder: Path) -> None:
        if self.uses_lora:
            load_lora_into(folder, self.modules, self.family)
            if self.token_tables:
                saved = read_token_embeddings(folder)
                if saved is None:
                    raise ValueError(f"{folder}: the run trains the token embedding but the checkpoint has none")
                for name, (table, ids) in self.token_tables.items():
                    put_rows(table, ids, saved[1][name])
        else:
            from ..models.loading import load_finetuned_module

            for name, module in self.modules.items():
                module.load_state_dict(load_finetuned_module(folder / name, module).state_dict())


def setup_trainable(config: TrainConfig, pipe, adapter: FamilyAdapter, family: ModelFamily, token: str = "") -> Trainable:
    """Freeze the base model and mark what ``config.method`` trains (seeded: LoRA init is random)."""
    pipe.vae.requires_grad_(False)
    for encoder in adapter.text_encoders:
        encoder.requires_grad_(False)
    torch.manual_seed(config.seed)
    net = getattr(pipe, family.denoiser)
    trained_encoders = {n: getattr(pipe, n) for n in adapter.trained_text_encoder_names} if config.train_text_encoder else {}
    if config.method == "dreambooth":
        net.requires_grad_(True)
        for encoder in trained_encoders.values():
            encoder.requires_grad_(True)
        return Trainable(config.method, family, {family.denoiser: net, **trained_encoders})
    add_lora(net, config.rank, config.alpha, denoiser_targets(family.denoiser, config.lora_targets, net))
    for encoder in trained_encoders.values():
        add_lora(encoder, config.rank, config.alpha, TEXT_ENCODER_TARGETS[config.lora_targets])
    modules: dict[str, torch.nn.Module] = {family.denoiser: net, **trained_encoders}
    tables = {}
    if config.train_token_embedding:
        if not token:
            raise ValueError("train_token_embedding needs the identifier token")
        for name, encoder in zip(adapter.text_encoder_names, adapter.text_encoders, strict=True):
            ids = token_ids(pipe, name, token)
            tables[name] = (enable_token_training(encoder, ids), ids)
    return Trainable(
        config.method,
        family,
        modules,
        rank=config.rank,
        alpha=config.alpha,
        targets=config.lora_targets,
        token=token,
        token_tables=tables,
    )
