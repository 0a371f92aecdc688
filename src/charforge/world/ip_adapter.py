"""The mini world's IP-Adapter (Ye et al. 2023): a picture as a prompt for the shipped base model.

No public IP-Adapter fits the mini world's 128-wide UNet, so one is trained here on renders, in h94's layout (a CLIP
image encoder in ``image_encoder/`` and ``ip-adapter.safetensors`` with ``image_proj.*`` and one ``to_k_ip`` /
``to_v_ip`` pair per cross-attention), which diffusers' ``load_ip_adapter`` loads like any other: so outfits from a
picture, the presets and the seed project's colour leak can be measured (issue 25). Unlike h94's, whose CLIP encoder
came pretrained, the image encoder is built from a config and trains with the adapter; the base stays frozen.

Each example is a render of a training character under a caption that names only some of its attributes
(``partial_caption``), with another render of the same character, in another pose, expression and background, as the
image prompt: what the caption leaves out must come from the picture. As in IP-Adapter's own training, some examples
drop the caption, some the picture (zeros, what the pipeline's unconditional branch feeds) and some both. The new
keys and values start as copies of the cross-attention's text ones (the paper's initialisation).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from .. import atomic
from ..models.tiny import sd_scheduler
from . import MODEL_DIR, PACKAGE_DIR
from .attributes import Character, Scene, partial_caption, random_scene, training_character
from .build import (
    RESOLUTION,
    _progress,
    _resume_training_state,
    _save_training_state,
    encode_set,
    noised,
    optimizer_step,
)
from .render import render

log = logging.getLogger("charforge.world")

IP_ADAPTER_DIR = PACKAGE_DIR / "ip_adapter"  # what ships; the base's charforge.json names it as its own
WEIGHTS = "ip-adapter.safetensors"


@dataclass
class AdapterConfig:
    characters: int = 4000  # training characters, each rendered in two scenes (each render is the other's prompt)
    steps: int = 6000  # the shipped adapter (about 32 min here); 2000 steps carried the outfit half as often
    batch: int = 32
    lr: float = 3e-4
    warmup: int = 100
    tokens: int = 4  # image tokens beside the text's, as h94's base adapters
    caption_drop: float = 0.5  # each attribute left out of the caption with this probability
    drop_text: float = 0.05
    drop_image: float = 0.05
    drop_both: float = 0.05
    seed: int = 0
    checkpoint_every: int = 250

    @property
    def drop_total(self) -> float:
        return self.drop_text + self.drop_image + self.drop_both


def make_image_encoder():
    """A small CLIP vision tower for 64 px renders (8 px patches), with the projection IP-Adapter reads."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    size = dict(hidden_size=128, intermediate_size=256, num_attention_heads=4, num_hidden_layers=4, projection_dim=128)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=RESOLUTION, patch_size=8, **size))


def cross_attentions(unet) -> list[tuple[str, torch.nn.Module]]:
    """The UNet's cross-attention layers in ``attn_processors`` order, the order h94's ``ip_adapter.N`` keys number."""
    modules = dict(unet.named_modules())
    return [(n, modules[n.removesuffix(".processor")]) for n in unet.attn_processors if n.endswith("attn2.processor")]


def initial_adapter(unet, image_embed_dim: int, tokens: int) -> dict[str, torch.Tensor]:
    """A new adapter in h94's key layout: a random projection of the image embedding to ``tokens`` text-width tokens,
    and per cross-attention ``to_k_ip`` / ``to_v_ip`` copied from its ``to_k`` / ``to_v``."""
    width = unet.config.cross_attention_dim
    proj = torch.nn.Linear(image_embed_dim, width * tokens)
    state = {
        "image_proj.proj.weight": proj.weight.detach().clone(),
        "image_proj.proj.bias": proj.bias.detach().clone(),
        "image_proj.norm.weight": torch.ones(width),
        "image_proj.norm.bias": torch.zeros(width),
    }
    for i, (_, attention) in enumerate(cross_attentions(unet)):
        state[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = attention.to_k.weight.detach().clone()
        state[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = attention.to_v.weight.detach().clone()
    return state


def adapter_state(unet) -> dict[str, torch.Tensor]:
    """The loaded adapter's weights back in h94's layout (what :func:`initial_adapter` wrote, trained)."""
    projection = unet.encoder_hid_proj.image_projection_layers[0]
    state = {
        "image_proj.proj.weight": projection.image_embeds.weight,
        "image_proj.proj.bias": projection.image_embeds.bias,
        "image_proj.norm.weight": projection.norm.weight,
        "image_proj.norm.bias": projection.norm.bias,
    }
    for i, (name, _) in enumerate(cross_attentions(unet)):
        processor = unet.attn_processors[name]
        state[f"ip_adapter.{2 * i + 1}.to_k_ip.weight"] = processor.to_k_ip[0].weight
        state[f"ip_adapter.{2 * i + 1}.to_v_ip.weight"] = processor.to_v_ip[0].weight
    return {k: v.detach().float().contiguous() for k, v in state.items()}


def save_adapter(folder: Path, unet, image_encoder) -> Path:
    """``folder/ip-adapter.safetensors`` and ``folder/image_encoder/``, as h94 lays them out."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(unet), str(folder / WEIGHTS))
    image_encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    return folder / WEIGHTS


def attach_new_adapter(pipe, folder: Path, tokens: int, seed: int) -> None:
    """Give ``pipe`` a new, untrained adapter (written to ``folder`` first, then loaded as any adapter is)."""
    from ..generate.conditions import image_encoder_folder, ip_adapter_location

    torch.manual_seed(seed)
    encoder = make_image_encoder()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(initial_adapter(pipe.unet, encoder.config.projection_dim, tokens), str(folder / WEIGHTS))
    encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
    location = ip_adapter_location(str(folder / WEIGHTS))
    pipe.load_ip_adapter(
        location[0], subfolder=location[1], weight_name=location[2], image_encoder_folder=image_encoder_folder(location)
    )


def trainable_parameters(pipe) -> dict[str, torch.Tensor]:
    """The image encoder, the image projection and the new keys and values: what trains (nothing of the base)."""
    params = {f"image_encoder.{k}": v for k, v in pipe.image_encoder.named_parameters()}
    params.update({f"image_proj.{k}": v for k, v in pipe.unet.encoder_hid_proj.named_parameters()})
    for name, _ in cross_attentions(pipe.unet):
        processor = pipe.unet.attn_processors[name]
        params.update({f"{name}.{k}": v for k, v in processor.named_parameters()})
    return params


def render_pairs(count: int, seed: int) -> tuple[np.ndarray, list[tuple[Character, Scene, Scene]]]:
    """``count`` training characters, each rendered in two random scenes: (count, 2, H, W, 3) pixels."""
    rng = random.Random(seed)
    pixels = np.empty((count, 2, RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
    records = []
    for i in range(count):
        character, scenes = training_character(rng), (random_scene(rng), random_scene(rng))
        for side, scene in enumerate(scenes):
            pixels[i, side] = np.asarray(render(character, scene, RESOLUTION, seed=rng.randrange(2**31)))
        records.append((character, *scenes))
    return pixels, records


def _lr_factor(step: int, config: AdapterConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    done = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, done)))


def train_adapter(out: Path, work: Path, config: AdapterConfig | None = None, base: Path = MODEL_DIR, progress=_progress) -> Path:
    """Train an IP-Adapter for ``base`` (the mini world's model) into ``out``; resumable state goes to ``work``."""
    from diffusers import StableDiffusionPipeline

    config = config or AdapterConfig()
    work.mkdir(parents=True, exist_ok=True)
    pipe = StableDiffusionPipeline.from_pretrained(str(base), safety_checker=None, requires_safety_checker=False)
    for part in (pipe.unet, pipe.vae, pipe.text_encoder):
        part.requires_grad_(False)
    attach_new_adapter(pipe, work / "initial", config.tokens, config.seed)
    params = trainable_parameters(pipe)
    for v in params.values():
        v.requires_grad_(True)
    optimizer = torch.optim.AdamW(params.values(), lr=config.lr, weight_decay=1e-2)
    state_dir = work / "state"
    start = _resume_training_state(state_dir, params, optimizer)
    if start:
        log.info("resuming IP-Adapter training at step %d", start)

    pixels, records = render_pairs(config.characters, config.seed)
    with torch.no_grad():
        mean, std = encode_set(pipe.vae, pixels.reshape(-1, RESOLUTION, RESOLUTION, 3))  # row 2i + side
    scale = pipe.vae.config.scaling_factor
    alphas = sd_scheduler().alphas_cumprod
    tokenizer, processor = pipe.tokenizer, pipe.feature_extractor
    for step in progress(range(start, config.steps), "IP-Adapter", initial=start, total=config.steps):
        rng = random.Random(config.seed * 1_000_003 + step)
        gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        index = torch.randint(0, len(records), (config.batch,), generator=gen).tolist()
        sides = [rng.randrange(2) for _ in index]
        rows = torch.tensor([2 * i + s for i, s in zip(index, sides, strict=True)])
        x0 = (mean[rows] + std[rows] * torch.randn(mean[rows].shape, generator=gen)) * scale
        drops = [rng.random() for _ in index]  # < text: no caption; < text + image: no picture; < all three: neither
        no_text = [d < config.drop_text or config.drop_text + config.drop_image <= d < config.drop_total for d in drops]
        no_image = torch.tensor([config.drop_text <= d < config.drop_total for d in drops])
        captions = [
            "" if skip else partial_caption(records[i][0], records[i][1 + s], rng, drop=config.caption_drop)
            for i, s, skip in zip(index, sides, no_text, strict=True)
        ]
        references = [Image.fromarray(pixels[i, 1 - s]) for i, s in zip(index, sides, strict=True)]
        ids = tokenizer(
            captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        with torch.no_grad():
            hidden = pipe.text_encoder(ids)[0]
        embeds = pipe.image_encoder(processor(references, return_tensors="pt").pixel_values).image_embeds
        embeds = torch.where(no_image[:, None], torch.zeros_like(embeds), embeds)
        noisy, t, noise = noised(x0, alphas, gen)
        pred = pipe.unet(noisy, t, hidden, added_cond_kwargs={"image_embeds": [embeds[:, None]]}).sample
        loss = F.mse_loss(pred, noise)
        optimizer_step(optimizer, params, loss, config.lr * _lr_factor(step, config))
        if step % 50 == 0:
            log.info("ip-adapter step %d loss %.4f", step, loss.item())
        done = step + 1
        if done % config.checkpoint_every == 0 or done == config.steps:
            _save_training_state(state_dir, done, params, optimizer)
    with atomic.atomic_dir(out, replace=True) as tmp:
        save_adapter(tmp, pipe.unet, pipe.image_encoder)
        (tmp / "build.json").write_text(json.dumps({"config": asdict(config)}, indent=2))
    return out / WEIGHTS
