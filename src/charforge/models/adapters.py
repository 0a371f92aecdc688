"""Per-family prompt encoding and conditioning, behind one small interface.

SD1.x/SD2.x condition the UNet on one text encoder's last hidden state; SDXL concatenates the
penultimate hidden states of two encoders and adds the pooled embedding plus size/crop "time ids"
(Podell et al. 2023, §2.2); SD3 joins two CLIPs' penultimate states (zero-padded to T5's width) and T5's
along the sequence, and conditions its MMDiT on the two pooled CLIP embeddings (Esser et al. 2024, §5.1); FLUX.1
reads T5's hidden states and CLIP's pooled output, sees the latent as a sequence of 2x2 patches with position ids,
and FLUX.1-dev is told a distilled guidance strength; Chroma reads T5 alone, with an attention mask;
Z-Image reads a Qwen3 language model's states of the chat-wrapped prompt and takes its latents as a list;
Qwen-Image reads a Qwen2.5-VL language model's last states of its prompt template (the template's system turn
dropped), masked, and sees 2x2 latent patches of its video VAE's single frame; FLUX.2 klein reads three layers of a
Qwen3 language model side by side and sees its VAE's batch-normed 2x2 patches as a sequence with 4-D position ids.
The training loop calls only :meth:`FamilyAdapter.tokenize`, :meth:`FamilyAdapter.encode` and
:meth:`FamilyAdapter.predict` and never asks which family it has.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .family import ModelFamily


@dataclass
class PromptEmbeds:
    hidden: torch.Tensor  # (B, L, D): cross-attention context (L = 77; 154 for SD3's CLIP + T5)
    pooled: torch.Tensor | None = None  # (B, P): SDXL, SD3, FLUX.1
    mask: torch.Tensor | None = None  # (B, L): which text tokens the denoiser attends to (Chroma)

    def _map(self, fn) -> PromptEmbeds:
        return PromptEmbeds(fn(self.hidden), *(None if t is None else fn(t) for t in (self.pooled, self.mask)))

    def to(self, device, dtype=None) -> PromptEmbeds:
        return self._map(lambda t: t.to(device, dtype))

    def row(self, i: int) -> PromptEmbeds:
        """The ``i``-th prompt's embeddings (a batch of one), on the CPU: what the text-embedding cache keeps."""
        return self._map(lambda t: t[i : i + 1].cpu())

    @staticmethod
    def cat(items: list[PromptEmbeds]) -> PromptEmbeds:
        def joined(name: str) -> torch.Tensor | None:
            first = getattr(items[0], name)
            return None if first is None else torch.cat([getattr(i, name) for i in items])

        return PromptEmbeds(joined("hidden"), joined("pooled"), joined("mask"))


class FamilyAdapter:
    """SD1.x / SD2.x: one CLIP text encoder."""

    encoder_names: tuple[str, ...] = ("text_encoder",)  # every text encoder the family may have
    trainable_encoder_names: tuple[str, ...] = ("text_encoder", "text_encoder_2")  # those --train-text-encoder trains
    denoiser_name = "unet"

    def __init__(self, pipe) -> None:
        self.pipe = pipe

    @property
    def text_encoder_names(self) -> tuple[str, ...]:
        """The text encoders this pipeline has (SD3 may be loaded without its T5)."""
        return tuple(n for n in self.encoder_names if getattr(self.pipe, n, None) is not None)

    @property
    def trained_text_encoder_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.text_encoder_names if n in self.trainable_encoder_names)

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        return [getattr(self.pipe, n) for n in self.text_encoder_names]

    @property
    def tokenizers(self) -> list:
        return [getattr(self.pipe, n.replace("text_encoder", "tokenizer")) for n in self.text_encoder_names]

    def tokenize(self, prompts: list[str]) -> list[torch.Tensor]:
        """One (B, 77) id tensor per tokenizer."""
        return [
            tok(prompts, padding="max_length", max_length=self.max_length(tok), truncation=True, return_tensors="pt").input_ids
            for tok in self.tokenizers
        ]

    def max_length(self, tokenizer) -> int:
        return tokenizer.model_max_length

    def predict(self, net, noisy: torch.Tensor, timesteps: torch.Tensor, embeds: PromptEmbeds, size: tuple[int, int]):
        """The denoiser's output for a noisy batch (``size``: the pictures' (H, W) in pixels)."""
        return net(noisy, timesteps, embeds.hidden, added_cond_kwargs=self.added_cond(embeds, size)).sample

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        encoder = (encoders or self.text_encoders)[0]
        return PromptEmbeds(encoder(ids[0].to(_device(encoder)))[0])

    def added_cond(self, embeds: PromptEmbeds, size: tuple[int, int]) -> dict[str, torch.Tensor] | None:
        return None


class SDXLAdapter(FamilyAdapter):
    encoder_names = ("text_encoder", "text_encoder_2")

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


class SD3Adapter(FamilyAdapter):
    """SD3/3.5: two CLIPs and T5 into an MMDiT, as ``StableDiffusion3Pipeline.encode_prompt`` joins them. The T5 part
    is 77 tokens long, as in diffusers' SD3 DreamBooth script (the pipeline draws with 256 by default)."""

    encoder_names = ("text_encoder", "text_encoder_2", "text_encoder_3")
    trainable_encoder_names = ("text_encoder", "text_encoder_2")  # the CLIPs, as diffusers' script; T5 stays frozen
    denoiser_name = "transformer"
    t5_length = 77

    def max_length(self, tokenizer) -> int:
        return self.t5_length if tokenizer is getattr(self.pipe, "tokenizer_3", None) else tokenizer.model_max_length

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        named = dict(zip(self.text_encoder_names, zip(encoders or self.text_encoders, ids, strict=True), strict=True))
        hidden, pooled = [], []
        for name in ("text_encoder", "text_encoder_2"):
            encoder, token_ids = named[name]
            out = encoder(token_ids.to(_device(encoder)), output_hidden_states=True)
            pooled.append(out[0])
            hidden.append(out.hidden_states[-2])
        clip = torch.cat(hidden, dim=-1)
        if "text_encoder_3" in named:
            encoder, token_ids = named["text_encoder_3"]
            t5 = encoder(token_ids.to(_device(encoder)))[0]
        else:  # no T5 loaded: the pipeline's zeros
            width = self.pipe.transformer.config.joint_attention_dim
            t5 = torch.zeros(clip.shape[0], self.t5_length, width, device=clip.device, dtype=clip.dtype)
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return PromptEmbeds(torch.cat([clip, t5.to(clip.dtype)], dim=-2), torch.cat(pooled, dim=-1))

    def predict(self, net, noisy: torch.Tensor, timesteps: torch.Tensor, embeds: PromptEmbeds, size: tuple[int, int]):
        return net(
            hidden_states=noisy,
            timestep=timesteps,
            encoder_hidden_states=embeds.hidden,
            pooled_projections=embeds.pooled,
            return_dict=False,
        )[0]


class FluxAdapter(FamilyAdapter):
    """FLUX.1: CLIP (pooled only) and T5 (512 tokens, as the pipeline), the latent packed into 2x2 patches for the
    transformer and unpacked after, as diffusers' FLUX DreamBooth script does."""

    encoder_names = ("text_encoder", "text_encoder_2")
    trainable_encoder_names = ("text_encoder",)  # CLIP, as diffusers' script; T5 stays frozen
    denoiser_name = "transformer"
    t5_length = 512
    # FLUX.1-dev was distilled to take guidance as an input; diffusers' script trains at its default, 3.5 (kohya: 1.0).
    training_guidance = 3.5

    def max_length(self, tokenizer) -> int:
        return self.t5_length if tokenizer is self.pipe.tokenizer_2 else tokenizer.model_max_length

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        clip, t5 = encoders or self.text_encoders
        pooled = clip(ids[0].to(_device(clip)), output_hidden_states=False).pooler_output
        hidden = t5(ids[1].to(_device(t5)))[0]
        return PromptEmbeds(hidden, pooled.to(hidden.dtype))

    def predict(self, net, noisy: torch.Tensor, timesteps: torch.Tensor, embeds: PromptEmbeds, size: tuple[int, int]):
        pipe = type(self.pipe)
        b, c, h, w = noisy.shape
        out = net(
            hidden_states=pipe._pack_latents(noisy, b, c, h, w),
            timestep=timesteps.to(noisy.dtype) / 1000,  # FLUX's transformer takes the noise level in [0, 1]
            encoder_hidden_states=embeds.hidden,
            txt_ids=torch.zeros(embeds.hidden.shape[1], 3, device=noisy.device, dtype=noisy.dtype),
            img_ids=pipe._prepare_latent_image_ids(b, h // 2, w // 2, noisy.device, noisy.dtype),
            return_dict=False,
            **self.conditioning(net, embeds, noisy, (h // 2) * (w // 2)),
        )[0]
        return pipe._unpack_latents(out, size[0], size[1], self.pipe.vae_scale_factor)

    def conditioning(self, net, embeds: PromptEmbeds, noisy: torch.Tensor, image_tokens: int) -> dict:
        """What the transformer takes besides the text and the image: CLIP's pooled prompt and FLUX.1-dev's guidance."""
        config = getattr(net, "module", net).config  # DDP wraps it
        guidance = None
        if config.guidance_embeds:
            guidance = torch.full((noisy.shape[0],), self.training_guidance, device=noisy.device, dtype=torch.float32)
        return {"guidance": guidance, "pooled_projections": embeds.pooled}


class ChromaAdapter(FluxAdapter):
    """Chroma: FLUX.1-schnell's blocks with the pooled-CLIP and guidance inputs replaced by a modulation approximator.
    The prompt is T5's alone (512 tokens), encoded with its attention mask and masked in the transformer to the text's
    tokens plus the first padding token, as ``ChromaPipeline`` does; T5 stays frozen."""

    encoder_names = ("text_encoder",)
    trainable_encoder_names = ()

    def max_length(self, tokenizer) -> int:
        return self.t5_length

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        t5 = (encoders or self.text_encoders)[0]
        token_ids = ids[0].to(_device(t5))
        real = (token_ids != self.pipe.tokenizer.pad_token_id).long()  # the tokenizer's own attention mask
        hidden = t5(token_ids, attention_mask=real)[0]
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        mask = (positions[None, :] <= real.sum(dim=1)[:, None]).to(hidden.dtype)
        return PromptEmbeds(hidden, None, mask)

    def conditioning(self, net, embeds: PromptEmbeds, noisy: torch.Tensor, image_tokens: int) -> dict:
        # the image tokens are always attended to (ChromaPipeline._prepare_attention_mask)
        ones = torch.ones(noisy.shape[0], image_tokens, device=embeds.mask.device, dtype=embeds.mask.dtype)
        return {"attention_mask": torch.cat([embeds.mask, ones], dim=1)}


class _QwenChatAdapter(FamilyAdapter):
    """A frozen Qwen3 language model reading the prompt as a user turn in its chat template, 512 tokens padded
    (Z-Image with the template's thinking on, FLUX.2 klein with it off, as their pipelines write it)."""

    trainable_encoder_names = ()
    denoiser_name = "transformer"
    max_tokens = 512
    thinking: bool

    def tokenize(self, prompts: list[str]) -> list[torch.Tensor]:
        tok, turn = self.pipe.tokenizer, dict(tokenize=False, add_generation_prompt=True, enable_thinking=self.thinking)
        chats = [tok.apply_chat_template([{"role": "user", "content": p}], **turn) for p in prompts]
        return [tok(chats, padding="max_length", max_length=self.max_tokens, truncation=True, return_tensors="pt").input_ids]

    def states(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None):
        """Every layer's hidden states of the prompts, and which tokens are the text's (the tokenizer's own mask).
        Only the language model's body runs: the head's logits are never read."""
        lm = (encoders or self.text_encoders)[0]
        token_ids = ids[0].to(_device(lm))
        real = token_ids != self.pipe.tokenizer.pad_token_id
        body = getattr(lm, "model", lm)
        return body(
            input_ids=token_ids, attention_mask=real.long(), output_hidden_states=True, use_cache=False
        ).hidden_states, real


class ZImageAdapter(_QwenChatAdapter):
    """Z-Image: a single-stream DiT reading a Qwen3 language model's penultimate hidden states of the prompt wrapped in
    its chat template (512 tokens, padding dropped), given the latents as a list of single frames and the noise level
    reversed (``(1000 - t) / 1000``); its output is the negated velocity, as diffusers' Z-Image script negates it.
    The language model stays frozen."""

    thinking = True

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        states, real = self.states(ids, encoders)
        hidden = states[-2]
        return PromptEmbeds(hidden, None, real.to(hidden.dtype))

    def predict(self, net, noisy: torch.Tensor, timesteps: torch.Tensor, embeds: PromptEmbeds, size: tuple[int, int]):
        captions = [h[m.bool()] for h, m in zip(embeds.hidden, embeds.mask, strict=True)]  # each prompt's own length
        frames = list(noisy.unsqueeze(2).unbind(0))  # (C, 1, H, W) each
        out = net(frames, (1000 - timesteps.to(noisy.dtype)) / 1000, captions, return_dict=False)[0]
        return -torch.stack(out).squeeze(2)


class QwenImageAdapter(FamilyAdapter):
    """Qwen-Image: an MMDiT reading a Qwen2.5-VL language model's last hidden states of the prompt in the pipeline's
    template, the template's first ``prompt_template_encode_start_idx`` tokens dropped and the padding masked
    (``QwenImagePipeline._get_qwen_prompt_embeds``); the latent packed into 2x2 patches with its shape given as one
    frame (``img_shapes``), the noise level in [0, 1], the velocity as the target (diffusers' Qwen-Image script). The
    language model stays frozen."""

    trainable_encoder_names = ()
    denoiser_name = "transformer"

    def tokenize(self, prompts: list[str]) -> list[torch.Tensor]:
        pipe = self.pipe
        texts = [pipe.prompt_template_encode.format(p) for p in prompts]
        length = pipe.tokenizer_max_length + pipe.prompt_template_encode_start_idx
        return [pipe.tokenizer(texts, max_length=length, padding=True, truncation=True, return_tensors="pt").input_ids]

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        lm = (encoders or self.text_encoders)[0]
        token_ids = ids[0].to(_device(lm))
        real = token_ids != self.pipe.tokenizer.pad_token_id  # the tokenizer's own attention mask
        hidden = lm(input_ids=token_ids, attention_mask=real.long(), output_hidden_states=True).hidden_states[-1]
        drop = self.pipe.prompt_template_encode_start_idx
        rows = [h[m][drop:] for h, m in zip(hidden, real, strict=True)]  # each prompt's own tokens, template cut
        longest = max(len(r) for r in rows)
        padded = torch.stack([torch.cat([r, r.new_zeros(longest - len(r), r.shape[1])]) for r in rows])
        mask = torch.stack([(torch.arange(longest, device=hidden.device) < len(r)) for r in rows]).to(hidden.dtype)
        return PromptEmbeds(padded, None, mask)

    def predict(self, net, noisy: torch.Tensor, timesteps: torch.Tensor, embeds: PromptEmbeds, size: tuple[int, int]):
        pipe = type(self.pipe)
        b, c, h, w = noisy.shape
        out = net(
            hidden_states=pipe._pack_latents(noisy, b, c, h, w),
            timestep=timesteps.to(noisy.dtype) / 1000,
            encoder_hidden_states=embeds.hidden,
            encoder_hidden_states_mask=embeds.mask,
            img_shapes=[(1, h // 2, w // 2)] * b,
            return_dict=False,
        )[0]
        return pipe._unpack_latents(out, size[0], size[1], self.pipe.vae_scale_factor).squeeze(2)


class Flux2KleinAdapter(_QwenChatAdapter):
    """FLUX.2 klein: an MMDiT reading a Qwen3 language model's hidden states after layers 9, 18 and 27 side by side
    (the prompt as a user turn, thinking off, 512 tokens with the padding kept, as ``Flux2KleinPipeline`` encodes it),
    text and image tokens placed by 4-D (time, row, column, index) position ids; its latents are the VAE's 2x2 patches
    (:mod:`charforge.models.latents`) packed into a sequence, the noise level in [0, 1] and the velocity as the target,
    as diffusers' FLUX.2 klein script. klein's transformer has no guidance input; the language model stays frozen."""

    thinking = False
    hidden_layers = (9, 18, 27)  # the pipeline's ``text_encoder_out_layers``

    def encode(self, ids: list[torch.Tensor], encoders: list[torch.nn.Module] | None = None) -> PromptEmbeds:
        states, _ = self.states(ids, encoders)  # the padding is attended to, as the pipeline does
        stacked = torch.stack([states[k] for k in self.hidden_layers], dim=1)  # (B, 3, L, D)
        b, layers, length, width = stacked.shape
        return PromptEmbeds(stacked.permute(0, 2, 1, 3).reshape(b, length, layers * width))

    def predict(self, net, noisy: torch.Tensor, timesteps: torch.Tensor, embeds: PromptEmbeds, size: tuple[int, int]):
        pipe = type(self.pipe)
        image_ids = pipe._prepare_latent_ids(noisy).to(noisy.device)
        packed = pipe._pack_latents(noisy)  # (B, h*w, C)
        out = net(
            hidden_states=packed,
            timestep=timesteps.to(noisy.dtype) / 1000,
            guidance=None,
            encoder_hidden_states=embeds.hidden,
            txt_ids=pipe._prepare_text_ids(embeds.hidden).to(noisy.device),
            img_ids=image_ids,
            return_dict=False,
        )[0]
        return pipe._unpack_latents_with_ids(out[:, : packed.shape[1]], image_ids)


def _device(module: torch.nn.Module) -> torch.device:
    # Works for DDP-wrapped encoders too, which have no ``.device``.
    return next(module.parameters()).device


def adapter_for(family: ModelFamily, pipe) -> FamilyAdapter:
    adapters = {
        ModelFamily.SDXL: SDXLAdapter,
        ModelFamily.SD3: SD3Adapter,
        ModelFamily.FLUX: FluxAdapter,
        ModelFamily.FLUX2: Flux2KleinAdapter,
        ModelFamily.CHROMA: ChromaAdapter,
        ModelFamily.ZIMAGE: ZImageAdapter,
        ModelFamily.QWEN: QwenImageAdapter,
    }
    return adapters.get(family, FamilyAdapter)(pipe)
