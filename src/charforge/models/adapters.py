"""Per-family prompt encoding and conditioning, behind one small interface.

SD1.x/SD2.x condition the UNet on one text encoder's last hidden state; SDXL concatenates the
penultimate hidden states of two encoders and adds the pooled embedding plus size/crop "time ids"
(Podell et al. 2023, §2.2). The training loop calls only :meth:`FamilyAdapter.encode` and
:meth:`FamilyAdapter.added_cond` and never asks which family it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .family import ModelFamily


@dataclass
class PromptEmbeds:
    hidden: torch.Tensor  # (B, 77, D): cross-attention context
    pooled: torch.Tensor | None = None  # (B, P): SDXL only

    def to(self, device, dtype=None) -> PromptEmbeds:
        return PromptEmbeds(self.hidden.to(device, dtype), None if self.pooled is None else self.pooled.to(device, dtype))

    @staticmethod
    def cat(items: list[PromptEmbeds]) -> PromptEmbeds:
        pooled = None if items[0].pooled is None else torch.cat([i.pooled for i in items])
        return PromptEmbeds(torch.cat([i.hidden for i in items]), pooled)


class FamilyAdapter:
    """SD1.x / SD2.x: one CLIP text encoder."""

    text_encoder_names: tuple[str, ...] = ("text_encoder",)

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        return [getattr(self.pipe, n) for n in self.text_encoder_names]

    @property
    def tokenizers(self) -> list:
        return [self.pipe.tokenizer] if len(self.text_encoder_names) == 1 else [self.pipe.tokenizer, self.pipe.tokenizer_2]

    def tokenize(self, prompts: list[str]) -> list[torch.Tensor]:
        """One (B, 77) id tensor per tokenizer."""
        return [
            tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
            for tok in self.tokenizers
        ]

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        encoder = (encoders or self.text_encoders)[0]
        return PromptEmbeds(encoder(ids[0].to(_device(encoder)))[0])

    def added_cond(self, embeds: PromptEmbeds, size: tuple[int, int]) -> dict[str, torch.Tensor] | None:
        return None


class SDXLAdapter(FamilyAdapter):
    text_encoder_names = ("text_encoder", "text_encoder_2")

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        hidden, pooled = [], None
        for encoder, token_ids in zip(encoders or self.text_encoders, ids, strict=True):
            out = encoder(token_ids.to(_device(encoder)), output_hidden_states=True)
            pooled = out[0]  # the last encoder's projected pooled output, (B, P)
            hidden.append(out.hidden_states[-2])  # penultimate layer, as SDXL was trained
        return PromptEmbeds(torch.cat(hidden, dim=-1), pooled)

    def added_cond(self, embeds: PromptEmbeds, size: tuple[int, int]) -> dict[str, torch.Tensor]:
        # (original H, W; crop top, left; target H, W): prepare framed the image, so no crop offset remains.
        h, w = size
        time_ids = torch.tensor([h, w, 0, 0, h, w], dtype=embeds.pooled.dtype)
        return {"text_embeds": embeds.pooled, "time_ids": time_ids.repeat(embeds.pooled.shape[0], 1).to(embeds.pooled.device)}


def _device(module: torch.nn.Module) -> torch.device:
    # Works for DDP-wrapped encoders too, which have no ``.device``.
    return next(module.parameters()).device


def adapter_for(family: ModelFamily, pipe) -> FamilyAdapter:
    return SDXLAdapter(pipe) if family is ModelFamily.SDXL else FamilyAdapter(pipe)
