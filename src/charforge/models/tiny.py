"""Tiny Stable Diffusion models built from configs: the same diffusers/transformers classes as SD1.x
and SDXL, random weights, a few hundred KB.

They let the quick start and the tests run the real code paths with no download. Their images are
noise: they prove that code runs and that training changes weights, not that it draws well (the
mini world's pretrained model is for that).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from .family import ModelFamily

# A byte-level vocabulary without merges: every word is spelled out in characters. Enough for a tiny
# model, and rare identifiers such as ``sks`` get tokens like in real CLIP.
_SPECIAL = ["<|startoftext|>", "<|endoftext|>"]


def _bytes_to_unicode() -> list[str]:
    """CLIP's byte-to-unicode table (the same mapping GPT-2 uses), in order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_clip_tokenizer(folder: Path, tokens: list[str], merges: list[tuple[str, str]] = (), max_length: int = 77) -> None:
    """CLIPTokenizer files (vocab.json, merges.txt, configs) for ``tokens``; the special tokens come last."""
    folder.mkdir(parents=True, exist_ok=True)
    bos, eos = _SPECIAL
    vocab = {t: i for i, t in enumerate([*tokens, bos, eos])}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    specials = {"bos_token": bos, "eos_token": eos, "unk_token": eos, "pad_token": eos}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials), encoding="utf-8")
    config = {"model_max_length": max_length, "tokenizer_class": "CLIPTokenizer", **specials}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def byte_tokens() -> list[str]:
    """CLIP's 256 byte symbols, alone and word-final: every string can be spelled with them."""
    chars = _bytes_to_unicode()
    return chars + [c + "</w>" for c in chars]


def write_tiny_tokenizer(folder: Path) -> None:
    write_clip_tokenizer(folder, byte_tokens())


def _text_config(projection_dim: int = 32):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=514,
        hidden_act="gelu",
        projection_dim=projection_dim,
        max_position_embeddings=77,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=64,
    )


def sd_scheduler():
    """The noise schedule of SD1.x/SDXL (scaled-linear betas 0.00085-0.012 over 1000 steps)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def t5_tokenizer(max_length: int = 256):
    """A T5 tokenizer (SentencePiece-style Unigram over single characters, ``</s>`` appended) built here, with no
    download: the tokenizer class SD3 loads, for the tiny T5 encoder's 256-symbol vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    chars = [chr(c) for c in range(32, 127) if chr(c) != " "] + ["\u2581"]  # "▁" marks a word start, as in T5
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in chars]
    vocab += [(f"<extra_{i}>", -100.0) for i in range(256 - len(vocab))]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0, model_max_length=max_length
    )


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_tiny_tokenizer(Path(tmp))
        return CLIPTokenizer.from_pretrained(tmp)


def _tiny_t5():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(vocab_size=256, d_model=64, d_kv=16, d_ff=64, num_layers=1, num_heads=4, decoder_start_token_id=0)
    )


def _flow_vae(channels: int, *, shift: float, scale: float):
    """The VAE of SD3 / FLUX at toy size: no quant convolutions, latents shifted and scaled by the family's factors."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 16),
        latent_channels=channels,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=32,
        shift_factor=shift,
        scaling_factor=scale,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def _tiny_sd3():
    """SD3's classes at toy size: an MMDiT with one joint block, two CLIPs with projections, a T5 encoder, a
    16-channel VAE with SD3's shift and scale, and the flow-matching Euler scheduler with SD3's shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    tokenizer = _clip_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=16,  # SD3's 16 latent channels: its inpainting pipeline insists on them
        out_channels=16,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=64,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        pos_embed_max_size=32,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_flow_vae(16, shift=0.0609, scale=1.5305),
        text_encoder=CLIPTextModelWithProjection(_text_config()),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_text_config()),
        tokenizer_2=tokenizer,
        text_encoder_3=_tiny_t5(),
        tokenizer_3=t5_tokenizer(),
    )


# FLUX.1's blocks at toy size (Chroma keeps them): one double-stream and one single-stream block, rotary position ids.
_FLUX_BLOCKS = dict(
    patch_size=1,
    in_channels=16,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=64,
    axes_dims_rope=(4, 4, 8),
)
# FLUX.1-dev's flow-matching Euler scheduler: the shift follows the picture's size (dynamic shifting).
_FLUX_SHIFT = dict(
    shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096
)


def _flux_vae():
    return _flow_vae(4, shift=0.1159, scale=0.3611)


def _tiny_flux():
    """FLUX.1-dev's classes at toy size: one double and one single block with rotary position ids and the guidance
    embedding, CLIP (pooled) and T5, a VAE with FLUX's shift (4 channels, 16 once packed in 2x2 patches), and the
    flow-matching Euler scheduler with FLUX's resolution-dependent shift."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer = _clip_tokenizer()
    transformer = FluxTransformer2DModel(**_FLUX_BLOCKS, pooled_projection_dim=32, guidance_embeds=True)
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**_FLUX_SHIFT),
        vae=_flux_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        tokenizer=tokenizer,
        text_encoder_2=_tiny_t5(),
        tokenizer_2=t5_tokenizer(512),
        transformer=transformer,
    )


def _tiny_chroma():
    """Chroma's classes at toy size: FLUX's double and single blocks with the modulation approximator instead of the
    guidance and pooled-CLIP inputs, T5 alone (512 tokens), FLUX's VAE and flow-matching Euler scheduler."""
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    transformer = ChromaTransformer2DModel(
        **_FLUX_BLOCKS, approximator_num_channels=16, approximator_hidden_dim=32, approximator_layers=1
    )
    return ChromaPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**_FLUX_SHIFT),
        vae=_flux_vae(),
        text_encoder=_tiny_t5(),
        tokenizer=t5_tokenizer(512),
        transformer=transformer,
    )


# Qwen's chat template, cut to what a prompt needs (Z-Image wraps every prompt as a user turn awaiting the answer).
_QWEN_CHAT = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def qwen_tokenizer(max_length: int = 512):
    """A Qwen2/Qwen3 tokenizer (byte-level BPE over the 256 byte symbols, no merges, Qwen's special tokens and chat
    template) built here, with no download: the tokenizer class Z-Image loads."""
    from tokenizers import AddedToken, pre_tokenizers
    from transformers import Qwen2Tokenizer

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {token: i for i, token in enumerate([*specials, *sorted(pre_tokenizers.ByteLevel.alphabet())])}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=max_length)
    tok.add_tokens([AddedToken(t, special=True) for t in specials])
    tok.chat_template = _QWEN_CHAT
    return tok


def _tiny_zimage():
    """Z-Image's classes at toy size: the single-stream DiT (one refiner and one main block, 2x2 patches), a Qwen3
    language model as the text encoder with its tokenizer built here, FLUX's VAE and Z-Image's fixed-shift
    flow-matching Euler scheduler."""
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = qwen_tokenizer()
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=1024,
        )
    )
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=4,
        dim=32,
        n_layers=1,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=32,
        axes_dims=[4, 6, 6],
        axes_lens=[1024, 64, 64],
    )
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_flux_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


def _tiny_flux2_klein():
    """FLUX.2 klein's classes at toy size: one double and one single block (fused attention + MLP) without a guidance
    input, a Qwen3 language model deep enough for the three layers the pipeline reads (9, 18, 27) with its tokenizer
    built here, FLUX.2's VAE (4 channels, 16 once in 2x2 patches, its batch-norm statistics made unequal so that
    leaving them out shows) and the dynamically shifted flow-matching Euler scheduler."""
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = qwen_tokenizer()
    text = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=16, num_hidden_layers=27, num_attention_heads=2,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=1024, tie_word_embeddings=True,
    )  # fmt: skip
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=3 * 16, timestep_guidance_channels=32, axes_dims_rope=(2, 2, 2, 2), guidance_embeds=False,
    )  # fmt: skip
    vae = AutoencoderKLFlux2(
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        sample_size=32,
    )
    vae.bn.running_mean.uniform_(-0.5, 0.5)
    vae.bn.running_var.uniform_(0.5, 2.0)
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**_FLUX_SHIFT),
        vae=vae,
        text_encoder=Qwen3ForCausalLM(text),
        tokenizer=tokenizer,
        transformer=transformer,
    )


def _tiny_qwen():
    """Qwen-Image's classes at toy size: the MMDiT (one block, 2x2 patches), its video VAE (8x, 16 latent channels
    normalised by their stored mean / std), a Qwen2.5-VL model as the text encoder (a tiny vision tower it never
    uses for a text prompt) with the Qwen tokenizer built here, and the pipeline's dynamically shifted scheduler."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = qwen_tokenizer(1024)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    text = dict(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=2048, bos_token_id=None, eos_token_id=eos,
        rope_scaling={"type": "mrope", "mrope_section": [4, 2, 2]},
    )  # fmt: skip
    vision = dict(
        depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=32, fullatt_block_indexes=[0]
    )  # fmt: skip
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, bos_token_id=None, eos_token_id=eos)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, axes_dims_rope=(4, 6, 6),
    )  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256,
        base_shift=0.5,
        max_image_seq_len=8192,
        max_shift=0.9,
        shift=1.0,
        shift_terminal=0.02,
        use_dynamic_shifting=True,
        time_shift_type="exponential",
    )  # Qwen-Image's published scheduler config
    return QwenImagePipeline(
        scheduler=scheduler,
        vae=AutoencoderKLQwenImage(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1),
        text_encoder=Qwen2_5_VLForConditionalGeneration(config),
        tokenizer=tokenizer,
        transformer=transformer,
    )


def _tiny_unet(**extra):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        **extra,
    )


def _tiny_sdxl():
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _clip_tokenizer()
    unet = _tiny_unet(
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
    )
    return StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        text_encoder_2=CLIPTextModelWithProjection(_text_config()),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=sd_scheduler(),
    )


def _tiny_sd(family: ModelFamily):
    """SD1 (per-layer head dims as in v1.5) or SD2 (linear projections)."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    unet = _tiny_unet(
        cross_attention_dim=32,
        attention_head_dim=8 if family is ModelFamily.SD1 else (2, 4),
        use_linear_projection=family is ModelFamily.SD2,
    )
    return StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        tokenizer=_clip_tokenizer(),
        unet=unet,
        scheduler=sd_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_tiny_pipeline(family: ModelFamily = ModelFamily.SD1, seed: int = 0):
    """A randomly initialised pipeline of ``family``'s architecture at toy size (VAE factor 2; Qwen-Image's video VAE 8)."""
    builders = {
        ModelFamily.SD3: _tiny_sd3,
        ModelFamily.FLUX: _tiny_flux,
        ModelFamily.FLUX2: _tiny_flux2_klein,
        ModelFamily.CHROMA: _tiny_chroma,
        ModelFamily.ZIMAGE: _tiny_zimage,
        ModelFamily.QWEN: _tiny_qwen,
        ModelFamily.SDXL: _tiny_sdxl,
    }
    torch.manual_seed(seed)
    return builders[family]() if family in builders else _tiny_sd(family)


def save_tiny_model(folder: str | Path, family: ModelFamily = ModelFamily.SD1, seed: int = 0) -> Path:
    folder = Path(folder)
    build_tiny_pipeline(family, seed).save_pretrained(folder, safe_serialization=True)
    return folder


# -- image encoders for evaluation (CLIP, DINO) -------------------------------------------------------
def save_tiny_clip(folder: str | Path, seed: int = 0, *, image_size: int = 32, full_size: bool = False) -> Path:
    """A CLIPModel + processor from configs with random weights (``full_size``: ViT-B/32's shapes)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer, CLIPVisionConfig

    folder = Path(folder)
    torch.manual_seed(seed)
    if full_size:
        config = CLIPConfig(
            text_config=_text_config(512).to_dict()
            | {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8, "num_hidden_layers": 12},
            vision_config=CLIPVisionConfig().to_dict(),
            projection_dim=512,
        )
        image_size = 224
    else:
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=image_size,
            patch_size=8,
            projection_dim=32,
        )
        config = CLIPConfig(text_config=_text_config(32).to_dict(), vision_config=vision.to_dict(), projection_dim=32)
    CLIPModel(config).eval().save_pretrained(folder, safe_serialization=True)
    write_tiny_tokenizer(folder / "_tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "_tokenizer")
    images = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def save_tiny_dino(folder: str | Path, seed: int = 0, *, image_size: int = 32, full_size: bool = False) -> Path:
    """A DINO-style ViT (``ViTModel``) + image processor with random weights (``full_size``: ViT-S/16's shapes)."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = Path(folder)
    torch.manual_seed(seed)
    if full_size:
        config = ViTConfig(
            hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, image_size=224, patch_size=16
        )
        image_size = 224
    else:
        config = ViTConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=image_size, patch_size=8
        )
    ViTModel(config, add_pooling_layer=False).eval().save_pretrained(folder, safe_serialization=True)
    ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return folder


# -- ControlNet and IP-Adapter for a tiny base ---------------------------------------------------------
def save_tiny_controlnet(folder: str | Path, base: str | Path, seed: int = 0) -> Path:
    """A ControlNet made from the tiny base's UNet (``ControlNetModel.from_unet``: the encoder copied, the zero
    convolutions given small random weights so the control picture changes the result)."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

    torch.manual_seed(seed)
    # the control picture is brought down to the latent size: one stride-2 step per VAE downsampling
    downsamplings = len(AutoencoderKL.load_config(Path(base) / "vae")["block_out_channels"]) - 1
    embedding = tuple(16 * 2**i for i in range(downsamplings + 1))
    unet = UNet2DConditionModel.from_pretrained(Path(base) / "unet")
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=embedding)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if "zero_conv" in name or "controlnet_down_blocks" in name or "controlnet_mid_block" in name:
                param.normal_(0, 0.3)
    folder = Path(folder)
    net.save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_ip_adapter(folder: str | Path, base: str | Path, seed: int = 0, tokens: int = 4) -> Path:
    """An IP-Adapter for the tiny base in h94's layout: ``ip-adapter.safetensors`` (``image_proj.*``: the image
    embedding to ``tokens`` text-width tokens; ``ip_adapter.N.to_k_ip/to_v_ip``: one key/value pair per cross
    attention, numbered as diffusers numbers them) and the CLIP image encoder in ``image_encoder/``."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    folder = Path(folder)
    unet_config = UNet2DConditionModel.load_config(Path(base) / "unet")
    width = unet_config["cross_attention_dim"]
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                              image_size=32, patch_size=8, projection_dim=32)  # fmt: skip
    CLIPVisionModelWithProjection(vision).eval().save_pretrained(folder / "image_encoder", safe_serialization=True)
    tensors = {
        "image_proj.proj.weight": torch.randn(width * tokens, 32) * 0.2,
        "image_proj.proj.bias": torch.zeros(width * tokens),
        "image_proj.norm.weight": torch.ones(width),
        "image_proj.norm.bias": torch.zeros(width),
    }
    unet = UNet2DConditionModel.from_config(unet_config)
    channels = list(unet_config["block_out_channels"])
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name.split(".")[1])]
        else:
            hidden = channels[int(name.split(".")[1])]
        tensors[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, width) * 0.3
        tensors[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, width) * 0.3
        key += 2
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "ip-adapter.safetensors"))
    return folder / "ip-adapter.safetensors"


# -- masks from words: Grounding DINO + SAM -------------------------------------------------------------
def save_tiny_grounded_sam(folder: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A tiny Grounding DINO (Swin backbone, BERT text encoder) and a tiny SAM, each with its Pillow-backed
    processor, in ``folder/grounding-dino`` and ``folder/sam``: what ``mask_from_words`` loads, at toy sizes."""
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
        SamConfig,
        SamModel,
        SamProcessor,
        SwinConfig,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    torch.manual_seed(seed)
    folder = Path(folder)
    detector, segmenter = folder / "grounding-dino", folder / "sam"
    detector.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "clothing", "hair", "dress", "the"]
    (detector / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=2, image_size=64,
                                   out_features=["stage1", "stage2"]),
        text_config=BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64),
        d_model=32, num_queries=8, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_feature_levels=2, encoder_n_points=2,
        decoder_n_points=2, max_text_len=16,
    )  # fmt: skip
    GroundingDinoForObjectDetection(config).eval().save_pretrained(detector, safe_serialization=True)
    images = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64})
    GroundingDinoProcessor(image_processor=images, tokenizer=BertTokenizer(str(detector / "vocab.txt"))).save_pretrained(detector)
    sam = SamConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=8,
                           output_channels=32, window_size=4, global_attn_indexes=[1], mlp_dim=64, num_pos_feats=16),
        prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
    )  # fmt: skip
    SamModel(sam).eval().save_pretrained(segmenter, safe_serialization=True)
    pil = SamImageProcessorPil(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    SamProcessor(image_processor=pil).save_pretrained(segmenter)
    return detector, segmenter
