"""LoRA: inject into a UNet / text encoders with peft, save in diffusers and kohya formats, load back.

Saved files follow the ecosystem: ``pytorch_lora_weights.safetensors`` that
``DiffusionPipeline.load_lora_weights`` loads as is, and a kohya copy (``lora_unet_..._lora_down.weight`` +
``.alpha``, see :mod:`charforge.models.kohya`) that A1111, Forge, ComfyUI and sd-scripts load.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .family import ModelFamily
from .files import DIFFUSERS_LORA_FILE, EMBEDDING_SUFFIX
from .kohya import TrainingFacts

# Which layers carry LoRA, by name as ``--lora-targets`` gives it:
# - attention: the attention projections (diffusers' DreamBooth-LoRA scripts);
# - transformer: every linear layer of the transformer blocks (kohya's default "LoRA-LierLa");
# - all: also the ResNet and resampling convolutions and time projections (kohya's "LoRA-C3Lier"/LoCon),
#   which hold the colours and textures of small models and of fine detail.
_UNET_ATTENTION = ["to_k", "to_q", "to_v", "to_out.0"]
_UNET_TRANSFORMER = [*_UNET_ATTENTION, "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
_UNET_RESNET = ["conv1", "conv2", "conv_shortcut", "time_emb_proj", "downsamplers.0.conv", "upsamplers.0.conv"]
UNET_TARGETS: dict[str, list[str]] = {
    "attention": _UNET_ATTENTION,
    "transformer": _UNET_TRANSFORMER,
    "all": [*_UNET_TRANSFORMER, *_UNET_RESNET],
}
# An MMDiT (SD3, FLUX's double blocks) has joint attention with separate projections of the text stream (``add_*``,
# ``to_add_out``), as diffusers' SD3 and FLUX DreamBooth-LoRA scripts target them, and a feed-forward per stream;
# FLUX's single blocks add a fused MLP (``proj_mlp``). Z-Image's single-stream DiT has the plain attention names;
# Qwen-Image's MMDiT the joint ones, with an MLP and a modulation per stream (``img_mlp`` / ``txt_mlp``, ``*_mod``).
# FLUX.2's single blocks fuse attention and MLP in one projection in (``to_qkv_mlp_proj``) and one out (``attn.to_out``,
# a plain layer there but a list in its double blocks, so :func:`denoiser_targets` names each single block's), as
# diffusers' FLUX.2 klein script targets them; its feed-forwards are ``linear_in`` / ``linear_out``.
_MMDIT_ATTENTION = [
    *("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj", "to_add_out"),
    "to_qkv_mlp_proj",  # FLUX.2's single blocks
]
_MMDIT_TRANSFORMER = [
    *_MMDIT_ATTENTION,
    *("ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp"),
    *("ff.linear_in", "ff.linear_out", "ff_context.linear_in", "ff_context.linear_out"),  # FLUX.2's feed-forwards
    *("feed_forward.w1", "feed_forward.w2", "feed_forward.w3"),  # Z-Image's gated feed-forward
    *("img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2"),  # Qwen-Image's per-stream ones
]
MMDIT_TARGETS: dict[str, list[str]] = {
    "attention": _MMDIT_ATTENTION,
    "transformer": _MMDIT_TRANSFORMER,
    "all": [*_MMDIT_TRANSFORMER, "norm1.linear", "norm1_context.linear", "context_embedder", "proj_out"]
    + ["img_mod.1", "txt_mod.1"],
}
DENOISERS = ("unet", "transformer")


def denoiser_targets(name: str, targets: str, net: torch.nn.Module | None = None) -> list[str]:
    """The layers ``--lora-targets`` names in denoiser ``name`` (``unet`` or ``transformer``), with ``net``'s FLUX.2
    single blocks' output layers by their full names."""
    names = (UNET_TARGETS if name == "unet" else MMDIT_TARGETS)[targets]
    singles = getattr(net, "single_transformer_blocks", None) or []
    fused = [f"single_transformer_blocks.{i}.attn.to_out" for i, b in enumerate(singles) if hasattr(b.attn, "to_qkv_mlp_proj")]
    return [*names, *fused]


_TEXT_ATTENTION = ["q_proj", "k_proj", "v_proj", "out_proj"]
_TEXT_LINEAR = [*_TEXT_ATTENTION, "fc1", "fc2"]  # a text encoder has no convolutions: "all" is every linear layer
TEXT_ENCODER_TARGETS: dict[str, list[str]] = {"attention": _TEXT_ATTENTION, "transformer": _TEXT_LINEAR, "all": _TEXT_LINEAR}


def lora_config(rank: int, alpha: float, targets: list[str], dropout: float = 0.0):
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, init_lora_weights="gaussian", target_modules=targets)


def add_lora(module: torch.nn.Module, rank: int, alpha: float, targets: list[str], dropout: float = 0.0) -> None:
    """Attach a trainable adapter named ``default``; only its weights require grad afterwards."""
    module.requires_grad_(False)
    module.add_adapter(lora_config(rank, alpha, targets, dropout))


def peft_state_dict(module: torch.nn.Module, name: str = "unet") -> dict[str, torch.Tensor]:
    """The adapter's weights, with text-encoder keys in the standard ``text_model.`` layout.

    transformers 5 flattened ``CLIPTextModel`` (no ``text_model`` submodule), but every LoRA consumer
    (A1111, ComfyUI, diffusers on transformers 4) expects ``text_model.encoder...`` names, and
    diffusers on transformers 5 loads those too; so we always write them.
    """
    from peft.utils import get_peft_model_state_dict

    # A module built on the meta device (a full-size architecture without weights) keeps its meta tensors: the
    # export tests check key names at real scale that way.
    state = {k: v if v.is_meta else v.detach().float().cpu().contiguous() for k, v in get_peft_model_state_dict(module).items()}
    if name not in DENOISERS:
        state = {(k if k.startswith("text_model.") else f"text_model.{k}"): v for k, v in state.items()}
    return state


def save_lora(
    folder: Path,
    family: ModelFamily,
    modules: dict[str, torch.nn.Module],
    *,
    rank: int,
    alpha: float,
    targets: str = "attention",
    kohya: TrainingFacts | None = None,
    token_rows: tuple[str, dict[str, torch.Tensor]] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``modules`` (``unet`` or ``transformer``, ``text_encoder``, ``text_encoder_2``) LoRA weights into ``folder``.

    Returns the diffusers-format file. With ``kohya`` (the training's facts) a kohya copy named
    ``<kohya.output_name>.safetensors`` is written beside it, carrying ``token_rows`` (an identifier's trained
    embedding) bundled, and the embedding alone as ``<output_name>_emb.safetensors``.
    """
    from .loading import pipeline_class

    # PEFT key names (``lora_A``/``lora_B``), which diffusers loads as they are. Its older
    # ``lora.down``/``lora.up`` names exist only for attention layers: converting a LoRA that also
    # covers feed-forward or convolution layers would mix the two and diffusers would drop a part.
    layers = {name: {k: v.to(dtype) for k, v in peft_state_dict(m, name).items()} for name, m in modules.items()}
    kwargs = {f"{name}_lora_layers": sd for name, sd in layers.items()}
    metadata = {}
    for name in modules:
        # diffusers builds the adapter from this config when it loads the file: it must list every trained layer
        layers_of = denoiser_targets(name, targets, modules[name]) if name in DENOISERS else TEXT_ENCODER_TARGETS[targets]
        metadata[f"{name}_lora_adapter_metadata"] = lora_config(rank, alpha, layers_of).to_dict()
    pipeline_class(family).save_lora_weights(folder, **kwargs, **metadata, safe_serialization=True)
    # kohya's names exist for the UNet families; an SD3 LoRA's diffusers file is what ComfyUI and Forge load as is.
    if kohya is not None and family.denoiser == "unet":
        save_kohya(
            folder, kohya, family, layers, modules["unet"].config, rank=rank, alpha=alpha, targets=targets, token_rows=token_rows
        )
    return folder / DIFFUSERS_LORA_FILE


def save_kohya(
    folder: Path,
    facts: TrainingFacts,
    family: ModelFamily,
    layers: dict[str, dict[str, torch.Tensor]],
    unet_config,
    *,
    rank: int,
    alpha: float,
    targets: str,
    token_rows: tuple[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """The kohya copy (see :mod:`charforge.models.kohya`), and the separate embedding file when there is one."""
    from .kohya import kohya_state_dict, lora_metadata, save_embedding, save_with_hash
    from .token_embeddings import bundle

    tensors = kohya_state_dict(layers, family, unet_config, alpha)
    if token_rows:
        tensors.update(bundle(*token_rows))
        save_embedding(folder / f"{facts.output_name}{EMBEDDING_SUFFIX}.safetensors", facts, family, token_rows[1])
    metadata = lora_metadata(facts, family, rank=rank, alpha=alpha, targets=targets)
    return save_with_hash(tensors, folder / f"{facts.output_name}.safetensors", metadata)


def load_lora_into(folder_or_file: Path, modules: dict[str, torch.nn.Module], family: ModelFamily) -> None:
    """Load a diffusers-format LoRA into modules that already carry a ``default`` adapter (resume).

    Fails loudly if any saved weight finds no place: a silently half-restored run is worse than none.
    """
    from diffusers.utils import convert_state_dict_to_peft, convert_unet_state_dict_to_peft
    from peft.utils import set_peft_model_state_dict

    from .loading import pipeline_class

    loaded = pipeline_class(family).lora_state_dict(str(folder_or_file))
    state = loaded[0] if isinstance(loaded, tuple) else loaded  # (state, alphas) for the UNet families; SD3: state
    for name, module in modules.items():
        prefix = f"{name}."
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        already_peft = any(".lora_A." in k or ".lora_B." in k for k in own)  # our files; older ones use lora.down
        if name in DENOISERS:
            own = own if already_peft else convert_unet_state_dict_to_peft(own)
        else:
            own = own if already_peft else convert_state_dict_to_peft(own)
            expects_text_model = any(n.startswith("text_model.") for n, _ in module.named_modules())
            if not expects_text_model:  # transformers 5 layout: no text_model submodule
                own = {k.removeprefix("text_model."): v for k, v in own.items()}
        if not own:
            raise ValueError(f"{folder_or_file}: no LoRA weights for {name}")
        result = set_peft_model_state_dict(module, own, adapter_name="default")
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise ValueError(f"{folder_or_file}: LoRA weights that fit nowhere in {name}: {unexpected[:3]}")
