"""What a picture is drawn from besides its prompt: a pose (ControlNet), an image prompt (IP-Adapter), or a picture
to edit (inpainting inside a mask, or restyling the whole of it).

Each is drawn by diffusers' own pipeline for it, made from the loaded base with ``from_pipe`` (the same UNet, text
encoders and LoRAs, nothing loaded twice): ``AutoPipelineForInpainting`` (9-channel inpainting UNets and ordinary
4-channel ones alike), ``AutoPipelineForImage2Image``, and their ControlNet forms when a pose is given. Every
condition is written into the picture's parameters the way A1111 names them ("Denoising strength", "ControlNet 0",
"IP-Adapter"), so a picture says what it was drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import CharforgeError
from .masks import keep_unmasked

IP_PRESETS: dict[str, float | dict[str, float]] = {
    # InstantStyle's split (diffusers' IP-Adapter guide), measured on SDXL: the middle attention of the first up
    # block with cross-attention (up_blocks.0.attentions.1) carries style, the last attention of the last down block
    # with it (down_blocks.2.attentions.1) the layout. On other UNets the presets take the same positions (SD1.x:
    # up_blocks.1.attentions.1 and down_blocks.2.attentions.1), which InstantStyle did not measure. "outfit" takes
    # the reference's look but mostly keeps the prompt's layout: the outfit project's scales.
    "style": {"style": 1.0},
    "layout": {"layout": 1.0},
    "style-and-layout": {"style": 1.0, "layout": 1.0},
    "outfit": {"style": 0.85, "layout": 0.4},
    "full": 1.0,
}


def preset_scales(name: str, unet_config) -> float | dict:
    """A preset as ``set_ip_adapter_scale``'s per-block scales for this UNet (blocks not named get 0)."""
    recipe = IP_PRESETS[name]
    if not isinstance(recipe, dict):
        return recipe
    layers = unet_config.layers_per_block
    down_layers = [layers] * len(unet_config.down_block_types) if isinstance(layers, int) else list(layers)
    up_layers = [n + 1 for n in reversed(down_layers)]  # an up block has one attention more than its down block

    def with_attention(types) -> list[int]:
        return [i for i, kind in enumerate(types) if "CrossAttn" in kind]

    scales: dict = {}
    if "layout" in recipe:
        block = with_attention(unet_config.down_block_types)[-1]
        scales["down"] = {f"block_{block}": [0.0] * (down_layers[block] - 1) + [recipe["layout"]]}
    if "style" in recipe:
        block = with_attention(unet_config.up_block_types)[0]
        row = [0.0] * up_layers[block]
        row[len(row) // 2] = recipe["style"]
        scales["up"] = {f"block_{block}": row}
    return scales


@dataclass(frozen=True)
class Pose:
    """A ControlNet and the control picture it follows (an OpenPose skeleton, or any other control map)."""

    controlnet: str  # hub id or diffusers folder
    image: Image.Image
    scale: float = 0.8
    source: str = ""  # the file the picture came from


@dataclass(frozen=True)
class ImagePrompt:
    """An IP-Adapter and the picture it reads; ``scale`` a number or per-block scales; ``mask`` limits it to a region."""

    adapter: str
    image: Image.Image
    scale: float | dict = 0.6
    mask: Image.Image | None = None
    source: str = ""
    preset: str = ""  # a name of IP_PRESETS: ``scale`` is made from it for the loaded UNet (``for_unet``)

    def for_unet(self, unet_config) -> ImagePrompt:
        """This image prompt with its preset turned into per-block scales for ``unet_config``."""
        from dataclasses import replace

        return replace(self, scale=preset_scales(self.preset, unet_config)) if self.preset else self


@dataclass(frozen=True)
class Edit:
    """A picture to redraw: inside ``mask`` only (inpainting), or all of it (``mask`` None: restyling)."""

    image: Image.Image
    mask: Image.Image | None = None
    strength: float = 0.75
    padding_mask_crop: int | None = None  # draw only a crop around the mask, this many pixels wider, then paste back
    keep_unmasked: bool = True  # paste the original back outside the mask (a latent pass changes it slightly)
    source: str = ""
    mask_source: str = ""

    def __post_init__(self) -> None:
        if not 0.0 < self.strength <= 1.0:
            raise CharforgeError(f"--strength must be above 0 and at most 1 (got {self.strength})")
        if self.mask is not None and self.mask.size != self.image.size:
            raise CharforgeError(f"the mask is {self.mask.size[0]}x{self.mask.size[1]} but the picture is "
                                 f"{self.image.size[0]}x{self.image.size[1]}")  # fmt: skip


@dataclass(frozen=True)
class Conditions:
    pose: Pose | None = None
    image_prompt: ImagePrompt | None = None
    edit: Edit | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)  # what was adjusted on the way in, for the user

    @property
    def any(self) -> bool:
        return self.pose is not None or self.image_prompt is not None or self.edit is not None

    def params(self) -> dict[str, str]:
        """A1111-style infotext fields for these conditions."""
        out: dict[str, str] = {}
        if self.edit is not None:
            out["Denoising strength"] = f"{self.edit.strength:g}"
            out["Init image"] = self.edit.source
            if self.edit.mask is not None:
                out["Mask"] = self.edit.mask_source or "given"
                if self.edit.padding_mask_crop is not None:
                    out["Inpaint area"] = f"Only masked, padding {self.edit.padding_mask_crop}"
        if self.pose is not None:
            out["ControlNet 0"] = (
                f"Module: openpose, Model: {self.pose.controlnet}, Weight: {self.pose.scale:g}, Image: {self.pose.source}"
            )
        if self.image_prompt is not None:
            scale = self.image_prompt.scale
            out["IP-Adapter"] = self.image_prompt.adapter
            out["IP-Adapter image"] = self.image_prompt.source
            out["IP-Adapter scale"] = f"{scale:g}" if isinstance(scale, int | float) else _compact(scale)
            if self.image_prompt.preset:
                out["IP-Adapter preset"] = self.image_prompt.preset
            if self.image_prompt.mask is not None:
                out["IP-Adapter mask"] = "given"
        return out


NONE = Conditions()


def _compact(value) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def edit_size(image: Image.Image, multiple: int) -> tuple[int, int]:
    """The drawing size for editing ``image``: its own size rounded down to what the model accepts."""
    w, h = image.size
    if w < multiple or h < multiple:
        raise CharforgeError(f"the picture to edit is {w}x{h}; this model needs at least {multiple}x{multiple}")
    return w - w % multiple, h - h % multiple


# Pipeline class -> (its image-to-image, its inpainting pipeline), where AutoPipelineFor* has no entry (diffusers 0.42).
# FLUX.2 klein has none for image-to-image: its own pipeline takes a picture as a reference to follow, not to redraw.
_EDIT_PIPELINES = {
    "ChromaPipeline": ("ChromaImg2ImgPipeline", "ChromaInpaintPipeline"),
    "ZImagePipeline": ("ZImageImg2ImgPipeline", "ZImageInpaintPipeline"),
    "QwenImagePipeline": ("QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline"),
    "Flux2KleinPipeline": (None, "Flux2KleinInpaintPipeline"),
}


def pipeline_for(pipe, conditions: Conditions, controlnet=None):
    """The diffusers pipeline that draws with ``conditions``, built on ``pipe``'s loaded parts."""
    extra = {"controlnet": controlnet} if controlnet is not None else {}
    if conditions.edit is not None:
        import diffusers
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        inpaint = conditions.edit.mask is not None
        own = _EDIT_PIPELINES.get(type(pipe).__name__)  # families diffusers' auto pipelines do not map yet
        if own is not None and own[1 if inpaint else 0] is None:
            raise CharforgeError("this model has no image-to-image pipeline in diffusers: give a mask to redraw inside it")
        if own is not None:
            kind = getattr(diffusers, own[1] if inpaint else own[0])
        else:
            kind = AutoPipelineForInpainting if inpaint else AutoPipelineForImage2Image
        out = kind.from_pipe(pipe, **extra)
        if own is not None and inpaint and not hasattr(out.transformer.config, "guidance_embeds"):
            # ChromaInpaintPipeline (diffusers 0.42) reads FLUX's guidance_embeds, which Chroma's transformer lacks;
            # Chroma has no guidance input, so False is the truth it asks for.
            out.transformer.register_to_config(guidance_embeds=False)
    elif controlnet is not None:
        from diffusers import AutoPipelineForText2Image

        out = AutoPipelineForText2Image.from_pipe(pipe, **extra)
    else:
        return pipe
    out.set_progress_bar_config(disable=True)
    return out


def call_arguments(conditions: Conditions, size: tuple[int, int], count: int) -> dict:
    """The keyword arguments ``pipeline`` takes for these conditions, for a batch of ``count`` pictures of ``size``."""
    kwargs: dict = {}
    edit, pose, prompt = conditions.edit, conditions.pose, conditions.image_prompt
    if edit is not None:
        kwargs["image"] = [edit.image.resize(size, Image.Resampling.LANCZOS)] * count
        kwargs["strength"] = edit.strength
        if edit.mask is not None:
            kwargs["mask_image"] = [edit.mask.resize(size, Image.Resampling.BILINEAR)] * count
            if edit.padding_mask_crop is not None:
                kwargs["padding_mask_crop"] = edit.padding_mask_crop
    if pose is not None:
        control = [pose.image.resize(size, Image.Resampling.BILINEAR)] * count
        kwargs["control_image" if edit is not None else "image"] = control
        kwargs["controlnet_conditioning_scale"] = pose.scale
    if prompt is not None:
        kwargs["ip_adapter_image"] = prompt.image
        if prompt.mask is not None:
            from diffusers.image_processor import IPAdapterMaskProcessor

            masks = IPAdapterMaskProcessor().preprocess([prompt.mask], height=size[1], width=size[0])
            kwargs["cross_attention_kwargs"] = {"ip_adapter_masks": [masks]}
    return kwargs


def finish(picture: Image.Image, conditions: Conditions, size: tuple[int, int]) -> Image.Image:
    """The drawn picture with the original pasted back outside the mask, when asked."""
    edit = conditions.edit
    if edit is None or edit.mask is None or not edit.keep_unmasked:
        return picture
    original = edit.image.resize(size, Image.Resampling.LANCZOS)
    return keep_unmasked(original, picture, edit.mask.resize(size, Image.Resampling.BILINEAR))


# -- loading ControlNets and IP-Adapters ------------------------------------------------------------------
def load_controlnet(source: str, pipe):
    """A ControlNet from a diffusers folder or hub id, in the base's dtype, checked against the base's UNet."""
    from diffusers import ControlNetModel

    from ..models.hub import local_files_only
    from ..models.loading import first_line

    local = local_files_only(source, what="--controlnet", instead="pass a local diffusers ControlNet folder")
    try:
        model = ControlNetModel.from_pretrained(source, dtype=pipe.unet.dtype, use_safetensors=True, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise CharforgeError(f"--controlnet {source}: cannot be loaded ({first_line(exc)})") from None
    want, have = pipe.unet.config.cross_attention_dim, model.config.cross_attention_dim
    sdxl_net, sdxl_base = model.config.addition_embed_type == "text_time", pipe.unet.config.addition_embed_type == "text_time"
    if want != have or sdxl_net != sdxl_base:
        raise CharforgeError(
            f"--controlnet {source}: made for a {'SDXL' if sdxl_net else 'SD1.x/SD2.x'} model with text width {have}, "
            f"but this base is {'SDXL' if sdxl_base else 'SD1.x/SD2.x'} with text width {want}; use a ControlNet of its family"
        )
    shrink = 2 ** (len(model.config.conditioning_embedding_out_channels) - 1)
    if shrink != pipe.vae_scale_factor:
        raise CharforgeError(
            f"--controlnet {source}: brings the control picture down {shrink}x, but this base's VAE does {pipe.vae_scale_factor}x"
        )
    return model.to(pipe.unet.device)


def ip_adapter_location(source: str, *, allow_unsafe_pickle: bool = False) -> tuple[str, str, str]:
    """``(repository or folder, subfolder, weight file)`` for ``load_ip_adapter``.

    ``source`` is a local weight file (its image encoder in ``image_encoder/`` beside it, as in h94/IP-Adapter's
    ``models/``), or ``OWNER/REPO/SUBFOLDER/FILE`` on the Hub. ``.bin`` files are pickles: refused without
    ``allow_unsafe_pickle``, naming the ``.safetensors`` files that exist instead.
    """
    path = Path(source)
    if path.exists():
        if path.is_dir():
            files = sorted(p.name for p in path.glob("*.safetensors"))
            if len(files) != 1:
                raise CharforgeError(
                    f"--ip-adapter {source}: give the weight file ({', '.join(files) or 'no .safetensors here'})"
                )
            path = path / files[0]
        folder, subfolder, weight = str(path.parent), "", path.name
    else:
        parts = source.split("/")
        if len(parts) < 3 or not parts[-1].endswith((".safetensors", ".bin")):
            raise CharforgeError(
                f"--ip-adapter {source}: not a file here; on the Hub give OWNER/REPO/SUBFOLDER/FILE "
                "(e.g. h94/IP-Adapter/models/ip-adapter_sd15.safetensors)"
            )
        folder, subfolder, weight = "/".join(parts[:2]), "/".join(parts[2:-1]), parts[-1]
    if weight.endswith(".bin") and not allow_unsafe_pickle:
        where = Path(folder, subfolder)
        others = sorted(p.name for p in where.glob("*.safetensors")) if where.is_dir() else []
        instead = (
            f" ({', '.join(others)} exist beside it)"
            if others
            else " (h94/IP-Adapter has ip-adapter_sd15.safetensors and, under sdxl_models/, ip-adapter_sdxl.safetensors)"
        )
        raise CharforgeError(
            f"--ip-adapter {source}: .bin files are pickles and can run code when loaded; use a .safetensors file{instead} "
            "or pass --allow-unsafe-pickle"
        )
    return folder, subfolder, weight


def image_encoder_folder(location: tuple[str, str, str]) -> str:
    """Where ``load_ip_adapter`` finds the adapter's CLIP image encoder: ``image_encoder/`` beside the weights, except
    h94's SDXL adapters trained on the ViT-H encoder (``sdxl_models/*vit-h*``), whose encoder is SD1.x's
    (``models/image_encoder``, a path from the repository's root, as diffusers' IP-Adapter guide loads them)."""
    folder, subfolder, weight = location
    if "vit-h" in weight and Path(subfolder).name == "sdxl_models" and not Path(folder, subfolder, "image_encoder").is_dir():
        return (Path(subfolder).parent / "models" / "image_encoder").as_posix()
    return "image_encoder"


def check_ip_adapter_fits(location: tuple[str, str, str], pipe, source: str) -> None:
    """A one-line error when the adapter was made for another family (its key width against the UNet's text width)."""
    folder, subfolder, weight = location
    path = Path(folder, subfolder, weight)
    if not path.is_file() or path.suffix != ".safetensors":
        return  # on the Hub: diffusers' own error after download names the mismatch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = [k for k in f.keys() if k.endswith("to_k_ip.weight")]  # noqa: SIM118 (no __iter__)
        if not keys:
            raise CharforgeError(f"--ip-adapter {source}: holds no IP-Adapter weights (no ip_adapter.*.to_k_ip keys)")
        width = f.get_slice(keys[0]).get_shape()[1]
    want = pipe.unet.config.cross_attention_dim
    if width != want:
        raise CharforgeError(
            f"--ip-adapter {source}: made for a model with text width {width}, but this base has {want} "
            "(an SD1.x adapter on SDXL, or the other way round?); use an adapter of the base's family"
        )


def ip_scale(value: str | float | dict | None) -> float | dict:
    """The scale ``set_ip_adapter_scale`` takes: a number, or a YAML mapping file of per-block scales."""
    if value is None:
        return 0.6
    if isinstance(value, int | float | dict):
        return value
    try:
        return float(value)
    except ValueError:
        pass
    path = Path(value)
    if not path.is_file():
        raise CharforgeError(f"--ip-scale {value}: a number, or a YAML file of per-block scales")
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not set(data) <= {"down", "mid", "up"}:
        raise CharforgeError(f"--ip-scale {path}: expected a mapping with down / mid / up (e.g. up: {{block_0: [0, 1, 0]}})")
    return data


# Where the usual weights live when none is named: the ones most users have (hub ids, downloaded on first use).
DEFAULT_CONTROLNETS = {"sd1": "lllyasviel/control_v11p_sd15_openpose", "sdxl": "thibaud/controlnet-openpose-sdxl-1.0"}
DEFAULT_IP_ADAPTERS = {
    "sd1": "h94/IP-Adapter/models/ip-adapter_sd15.safetensors",
    "sdxl": "h94/IP-Adapter/sdxl_models/ip-adapter_sdxl.safetensors",
}


def with_defaults(conditions: Conditions, family: str, own_ip_adapter: str | None = None) -> Conditions:
    """``conditions`` with the family's usual ControlNet and IP-Adapter where none was named (the model's own
    IP-Adapter first, as its ``charforge.json`` names it: the mini world's)."""
    from dataclasses import replace

    def default(table: dict[str, str], what: str) -> str:
        if family not in table:
            raise CharforgeError(f"{what}: no default for {family} models; name one")
        return table[family]

    pose, prompt = conditions.pose, conditions.image_prompt
    if pose is not None and not pose.controlnet:
        pose = replace(pose, controlnet=default(DEFAULT_CONTROLNETS, "--pose"))
    if prompt is not None and not prompt.adapter:
        prompt = replace(prompt, adapter=own_ip_adapter or default(DEFAULT_IP_ADAPTERS, "--image-prompt"))
    return replace(conditions, pose=pose, image_prompt=prompt)


def build_conditions(
    *,
    pose: str | Path | None = None,
    controlnet: str = "",
    control_scale: float = 0.8,
    image_prompt: str | Path | None = None,
    ip_adapter: str = "",
    ip_scale_value: str | float | dict | None = None,
    ip_preset: str | None = None,
    ip_mask: str | Path | None = None,
    edit_image: str | Path | None = None,
    mask: str | Path | Image.Image | None = None,
    mask_source: str | None = None,
    strength: float | None = None,
    padding_mask_crop: int | None = None,
    keep_original: bool = True,
) -> Conditions:
    """Conditions from files, each checked with a one-line error naming the file; notes say what was adjusted.
    ``mask_source``: how a mask given as a picture was made, for the PNG's parameters (a file names itself)."""
    from .pose import load_pose

    notes: list[str] = []
    built_pose = built_prompt = built_edit = None
    if pose is not None:
        if control_scale < 0:
            raise CharforgeError(f"--control-scale must be 0 or more (got {control_scale})")
        built_pose = Pose(controlnet, load_pose(pose), control_scale, str(pose))
    if image_prompt is not None:
        built_prompt = _image_prompt(image_prompt, ip_adapter, ip_scale_value, ip_preset, ip_mask, notes)
    elif ip_mask is not None or ip_preset is not None:
        raise CharforgeError("--ip-mask / --ip-preset need --image-prompt")
    if edit_image is not None:
        built_edit = _edit(edit_image, mask, mask_source, strength, padding_mask_crop, keep_original, notes)
    return Conditions(built_pose, built_prompt, built_edit, tuple(notes))


def _image_prompt(image: str | Path, adapter: str, scale_value, preset: str | None, mask, notes: list[str]) -> ImagePrompt:
    """The image prompt of :func:`build_conditions`, checked (what was adjusted goes to ``notes``)."""
    from .masks import load_mask, open_picture

    picture = open_picture(image, "--image-prompt")
    region = None
    if mask is not None:
        loaded = load_mask(mask, picture.size, "--ip-mask")
        region = loaded.mask
        notes.extend(loaded.notes)
    if preset is not None and preset not in IP_PRESETS:
        raise CharforgeError(f"--ip-preset {preset}: unknown (known: {', '.join(IP_PRESETS)})")
    if preset is not None and scale_value is not None:
        raise CharforgeError("give --ip-scale or --ip-preset, not both")
    return ImagePrompt(adapter, picture, ip_scale(scale_value), region, str(image), preset or "")


def _edit(
    image: str | Path, mask, mask_source: str | None, strength: float | None, padding: int | None, keep: bool, notes: list[str]
) -> Edit:
    """The edit of :func:`build_conditions`: the picture, its mask (a file, a picture, or None: restyle it whole)
    and the strength (default 1 inside a mask, 0.5 for a restyle)."""
    from .masks import load_mask, open_picture, share_warning

    picture = open_picture(image, "picture to edit")
    region, source = None, ""
    if isinstance(mask, Image.Image):
        region, source = mask.convert("L"), mask_source or "made from words or colours"
    elif mask is not None:
        loaded = load_mask(mask, picture.size)
        region, source = loaded.mask, str(mask)
        notes.extend(loaded.notes)
    if region is not None:
        warning = share_warning(region, f"--mask {source}")
        if warning:
            notes.append(warning)
    default_strength = 1.0 if region is not None else 0.5
    return Edit(picture, region, default_strength if strength is None else strength, padding, keep, str(image), source)
