"""What ``generate`` and ``edit`` take: the drawing settings, and the pose, image prompt or region to follow.

``api.generate`` / ``api.edit`` validate their keyword arguments into these models and the CLI's flags are made
from their fields, so a setting is declared once (name, type, default, help) for the API, the CLI and ``--config``.
Which model and run to draw with (``--base``, ``--run``, ``--lora``, ...) are the API functions' own arguments.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from pydantic import Field, field_validator

from ..options import CommaInts, Options, cli
from .conditions import Conditions, build_conditions
from .masks import DEFAULT_TOLERANCE

THESIS_STEPS = 50
SAMPLER_HELP = (
    "default (the model's: dpm++2m, euler for FLUX), dpm++2m, dpm++2m-karras, euler, euler-a, ddim, pndm, unipc, heun, dpm2."
)
IMAGE_PROMPT = "Image prompt"


class DrawOptions(Options):
    """How each picture is sampled: what every drawing command shares."""

    num_images: int = Field(1, ge=1, description="Images per prompt.", json_schema_extra=cli("-n", "--num-images"))
    seed: int = Field(0, description="First seed; image k uses seed + k.")
    seeds: CommaInts | None = Field(
        None, description="Explicit comma-separated seeds (overrides -n/--seed).", json_schema_extra=cli(text=True)
    )
    steps: int = Field(THESIS_STEPS, ge=1, description="Inference steps (50 as in the thesis).")
    guidance: float | None = Field(
        None, description="Classifier-free guidance scale (default: the model's recommended, else 7.5)."
    )
    negative_prompt: str = Field("", description="Negative prompt.", json_schema_extra=cli("--negative"))
    sampler: str = Field("default", description=SAMPLER_HELP)
    batch_size: int = Field(1, description="Pictures drawn per pass of the model (faster, more memory).")

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"--batch-size must be at least 1 (got {value})")
        return value

    @property
    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds else [self.seed + k for k in range(self.num_images)]


class ImagePromptOptions(Options):
    """An IP-Adapter image prompt: a picture whose look (an outfit, a style) the drawing takes."""

    image_prompt: Path | None = Field(
        None,
        description="An image prompt (IP-Adapter): a picture whose look (e.g. an outfit) to take.",
        json_schema_extra=cli(panel=IMAGE_PROMPT),
    )
    ip_adapter: str = Field(
        "",
        description="IP-Adapter weights: a .safetensors file (image_encoder/ beside it) or OWNER/REPO/SUB/FILE "
        "(default: the model's own, as its charforge.json names it, else h94/IP-Adapter's for the base's family).",
        json_schema_extra=cli(panel=IMAGE_PROMPT),
    )
    ip_scale: str | float | dict | None = Field(
        None,
        description="How strongly the image prompt acts: a number (0.6) or a YAML file of per-block scales.",
        json_schema_extra=cli(panel=IMAGE_PROMPT, text=True),
    )
    ip_preset: str | None = Field(
        None,
        description="Per-block scales by name: outfit, style, layout, style-and-layout, full.",
        json_schema_extra=cli(panel=IMAGE_PROMPT),
    )

    def image_prompt_arguments(self) -> dict:
        """``build_conditions``'s image-prompt arguments."""
        return {
            "image_prompt": self.image_prompt,
            "ip_adapter": self.ip_adapter,
            "ip_scale_value": self.ip_scale,
            "ip_preset": self.ip_preset,
        }


class GenerateOptions(DrawOptions, ImagePromptOptions):
    """``charforge generate``: pictures from prompts, optionally following a pose or an image prompt."""

    width: int | None = Field(None, description="Width in pixels (default: the model's native size).")
    height: int | None = Field(None, description="Height in pixels (default: the model's native size).")
    pose: Path | None = Field(
        None,
        description="Pose to follow: an OpenPose skeleton picture or keypoints in JSON.",
        json_schema_extra=cli(panel="Pose"),
    )
    controlnet: str = Field(
        "",
        description="ControlNet folder or hub id (default: the OpenPose one for the base's family).",
        json_schema_extra=cli(panel="Pose"),
    )
    control_scale: float = Field(0.8, description="How strongly the pose is followed.", json_schema_extra=cli(panel="Pose"))
    ip_mask: Path | None = Field(
        None,
        description="A mask: the image prompt acts only inside it (white).",
        json_schema_extra=cli(panel=IMAGE_PROMPT),
    )

    def conditions(self) -> Conditions:
        """The pose and image prompt, each file checked (a one-line error naming it)."""
        return build_conditions(
            pose=self.pose,
            controlnet=self.controlnet,
            control_scale=self.control_scale,
            ip_mask=self.ip_mask,
            **self.image_prompt_arguments(),
        )

    @property
    def has_conditions(self) -> bool:
        return any(value is not None for value in (self.pose, self.image_prompt, self.ip_mask))


class EditOptions(DrawOptions, ImagePromptOptions):
    """``charforge edit``: which region of a picture is redrawn, and how much."""

    mask: Path | Image.Image | None = Field(None, description="Redraw only inside this mask (white = redraw).")
    mask_words: str | None = Field(None, description="Make the mask from words, e.g. 'clothing' (a detection model).")
    by_colour: str | None = Field(
        None, description="Make the mask from palette colour N of the workspace (charforge stats) or #rrggbb."
    )
    tolerance: float = Field(DEFAULT_TOLERANCE, description="With --by-colour: CIEDE2000 distance still counted as the colour.")
    dilate: int = Field(2, description="Grow the made mask by this many pixels.")
    restyle: bool | None = Field(
        None,
        description="No mask: redraw the whole picture (image-to-image).",
        # The command line insists on a mask or --restyle; the API restyles when no mask is given.
        json_schema_extra=cli(default=False),
    )
    strength: float | None = Field(None, description="How much is redrawn, 0-1 (default: 1 inside a mask, 0.5 with --restyle).")
    padding_mask_crop: int | None = Field(
        None, description="Draw only a crop around the mask this many pixels wider (small regions)."
    )
    keep_original: bool = Field(True, description="Paste the original back outside the mask, so only the masked region changes.")

    def conditions(self, image: str | Path, region: Path | Image.Image | None) -> Conditions:
        """The picture to redraw and the ``region`` of it (None: all of it), with the image prompt, each checked."""
        return build_conditions(
            edit_image=image,
            mask=region,
            strength=self.strength,
            padding_mask_crop=self.padding_mask_crop,
            keep_original=self.keep_original,
            **self.image_prompt_arguments(),
        )


class MaskOptions(Options):
    """``charforge mask``: a mask from a palette colour (no model needed) or from words (detection + segmentation)."""

    by_colour: str | None = Field(
        None, description="The pixels of palette colour N (of --workspace, as charforge stats lists it) or #rrggbb."
    )
    tolerance: float = Field(DEFAULT_TOLERANCE, description="With --by-colour: CIEDE2000 distance still counted as the colour.")
    dilate: int = Field(0, description="Grow the mask by this many pixels (negative: shrink).")
    feather: int = Field(0, ge=0, description="Soften the mask's edge over this many pixels.")
    model: str = Field(
        "auto", description="With words: sam3 (one model, needs torchvision), grounding-dino+sam, or auto (sam3 where it runs)."
    )
    model_path: list[str] | None = Field(
        None,
        description="With words: the model's folder or hub id (twice for grounding-dino+sam: detector, then SAM).",
    )
    box_threshold: float = Field(0.3, description="With words: how sure a detection must be.")
    mask_threshold: float = Field(0.5, description="With words: how sure a pixel must be (a probability).")
