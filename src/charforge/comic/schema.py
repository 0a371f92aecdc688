"""The storyboard file: one YAML document describing a comic, validated with pydantic.

Errors point to the line in the file (``story.yaml:42: ...``) and say how to fix them, because the
storyboard is written by hand and edited many times; see :func:`load_storyboard`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import CharforgeError
from ..yamlconfig import line_of, parse_yaml_model

PAGE_SIZES_MM: dict[str, tuple[float, float]] = {
    "A4": (210, 297),
    "A5": (148, 210),
    "B5": (176, 250),  # Japanese manga tankobon are close to B6/B5
    "letter": (215.9, 279.4),
    "comic": (168.3, 260.4),  # US comic book trim size
}
Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
Side = Literal["left", "right", "top", "bottom", "none"]
REFERENCE = re.compile(r"\{([A-Za-z_][\w-]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageSpec(_Strict):
    """Paper and margins. Sizes in pixels at ``dpi``; named sizes use their millimetre format."""

    size: str | tuple[int, int] = "A4"
    dpi: int = Field(150, ge=36, le=1200)
    margin: int = Field(40, ge=0, description="px around the panels")
    gutter: int = Field(16, ge=0, description="px between panels")
    direction: Literal["ltr", "rtl"] = "ltr"
    background: str = "white"
    border: int = Field(3, ge=0, description="panel border width in px")

    @field_validator("size")
    @classmethod
    def _size(cls, value):
        if isinstance(value, str) and value not in PAGE_SIZES_MM:
            raise ValueError(f"unknown page size {value!r}; use one of {', '.join(PAGE_SIZES_MM)} or [width, height] in px")
        if isinstance(value, tuple) and min(value) < 64:
            raise ValueError("a custom page size is [width, height] in pixels, each at least 64")
        return value

    def pixels(self) -> tuple[int, int]:
        if isinstance(self.size, tuple):
            return self.size
        w, h = PAGE_SIZES_MM[self.size]
        return round(w / 25.4 * self.dpi), round(h / 25.4 * self.dpi)


class ModelSpec(_Strict):
    """Which model draws the panels; ``world`` is the embedded mini-world model."""

    base: str = "world"
    steps: int = Field(30, ge=1, le=500)
    guidance: float | None = Field(None, ge=0, le=30, description="default: the model's recommended, else 7.5")
    sampler: str = "default"
    size: tuple[int, int] | None = Field(None, description="generation size in px; default the model's native area")


class CharacterSpec(_Strict):
    """How a character enters prompts (``{name}`` is replaced by ``prompt``) and which LoRA draws it."""

    prompt: str
    lora: Path | None = None
    weight: float = Field(1.0, ge=-2, le=2)


class LocationSpec(_Strict):
    """A place the story returns to: the same prompt words and seed keep its panels consistent."""

    prompt: str
    seed: int | None = None


class RowSpec(_Strict):
    height: float = Field(1.0, gt=0)
    widths: list[float] = Field(min_length=1)

    @field_validator("widths")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(w <= 0 for w in value):
            raise ValueError("widths must be positive")
        return value


class LayoutSpec(_Strict):
    """A grid of letters (one letter per panel; repeat it to span rows or columns), or rows of widths."""

    grid: str | None = None
    widths: list[float] | None = None
    heights: list[float] | None = None
    rows: list[RowSpec] | None = None

    @model_validator(mode="after")
    def _one(self) -> LayoutSpec:
        if (self.grid is None) == (self.rows is None):
            raise ValueError("a layout has either 'grid' (letters) or 'rows' (widths per row)")
        return self


class NarrationSpec(_Strict):
    text: str = Field(min_length=1)
    corner: Corner = "top-left"


class BalloonSpec(_Strict):
    text: str = Field(min_length=1)
    speaker: str | None = None
    style: Literal["speech", "thought", "shout", "whisper"] = "speech"
    tail: tuple[float, float] | Side | None = Field(
        None, description="a point in the panel (0-1, 0-1) or a side; default: towards the speaker's region, else bottom"
    )
    at: tuple[float, float] | None = Field(None, description="balloon centre in the panel (0-1); default: least busy spot")

    @field_validator("tail", "at")
    @classmethod
    def _inside(cls, value):
        if isinstance(value, tuple) and not all(0 <= v <= 1 for v in value):
            raise ValueError("positions are fractions of the panel, between 0 and 1")
        return value


class SoundSpec(_Strict):
    text: str = Field(min_length=1)
    at: tuple[float, float] = (0.5, 0.5)
    angle: float = -8
    colour: str = "#ffcc00"
    size: float = Field(0.16, gt=0, le=1, description="letter height as a share of the panel height")


class RegionSpec(_Strict):
    """One part of a two-shot: drawn on its own (its own characters/LoRAs), then joined side by side."""

    prompt: str
    characters: list[str] | None = None
    width: float = Field(1.0, gt=0)
    seed: int | None = None


class ImagePromptSpec(_Strict):
    """A picture the panel takes its look from, through an IP-Adapter (``charforge generate --image-prompt``)."""

    image: Path
    adapter: str = Field("", description="an IP-Adapter .safetensors file or OWNER/REPO/SUBFOLDER/FILE; default: the family's")
    scale: float | None = Field(None, ge=0, description="default 0.6")
    preset: Literal["style", "layout", "style-and-layout", "outfit", "full"] | None = None
    mask: Path | None = Field(None, description="where in the panel the image prompt acts (white)")

    @model_validator(mode="after")
    def _one_scale(self) -> ImagePromptSpec:
        if self.scale is not None and self.preset is not None:
            raise ValueError("give scale or preset, not both")
        return self


class EditSpec(_Strict):
    """A picture the panel redraws (``charforge edit``): inside a mask (a file, or words), or all of it."""

    image: Path
    mask: Path | None = Field(None, description="white where the picture is redrawn")
    mask_words: str | None = Field(None, description="what to redraw, found by a segmentation model, e.g. 'clothing'")
    strength: float | None = Field(None, gt=0, le=1, description="default 1 inside a mask, 0.5 without one")

    @model_validator(mode="after")
    def _one_mask(self) -> EditSpec:
        if self.mask is not None and self.mask_words is not None:
            raise ValueError("give mask or mask_words, not both")
        return self


class PanelSpec(_Strict):
    prompt: str = ""
    negative: str | None = None
    characters: list[str] | None = Field(None, description="default: the {names} used in the prompt")
    location: str | None = None
    framing: Literal["close-up", "medium", "wide"] | None = None
    seed: int | None = None
    steps: int | None = Field(None, ge=1, le=500)
    guidance: float | None = Field(None, ge=0, le=30)
    size: tuple[int, int] | None = None
    image: Path | None = Field(None, description="use this picture instead of generating one")
    sketch: Path | None = Field(None, description="a rough drawing to start from (image-to-image)")
    strength: float = Field(0.7, gt=0, le=1)
    image_prompt: ImagePromptSpec | None = None
    edit: EditSpec | None = None
    regions: list[RegionSpec] | None = Field(None, description="several characters, each drawn apart and joined")
    narration: list[NarrationSpec] = []
    balloons: list[BalloonSpec] = []
    sounds: list[SoundSpec] = []

    @model_validator(mode="after")
    def _source(self) -> PanelSpec:
        if not (self.prompt or self.image or self.regions):
            raise ValueError("a panel needs a prompt, an image or regions")
        if self.regions is not None and len(self.regions) < 2:
            raise ValueError("regions are for two or more characters side by side; use prompt for one")
        if self.edit is not None and (self.regions or self.sketch or self.image):
            raise ValueError("edit redraws one picture: not with regions, sketch or image")
        if self.image_prompt is not None and self.sketch is not None:
            raise ValueError("a sketch with an image prompt: give the sketch as edit: {image: ..., strength: ...}")
        return self


class PageContent(_Strict):
    layout: str | LayoutSpec = "grid-3x3"
    panels: list[PanelSpec] = Field(min_length=1)


class LetteringSpec(_Strict):
    font: Path | None = Field(None, description="a .ttf/.otf file; default Comic Neue if installed")
    size: int = Field(26, ge=6, le=200, description="largest letter size in px; text shrinks to fit")
    min_size: int = Field(12, ge=4, le=200)


class Storyboard(_Strict):
    title: str = ""
    credits: str = ""
    page: PageSpec = PageSpec()
    model: ModelSpec = ModelSpec()
    style: str = Field("", description="appended to every prompt")
    negative: str = ""
    lettering: LetteringSpec = LetteringSpec()
    characters: dict[str, CharacterSpec] = {}
    locations: dict[str, LocationSpec] = {}
    # one page: layout + panels; several: pages
    layout: str | LayoutSpec | None = None
    panels: list[PanelSpec] | None = None
    pages: list[PageContent] | None = None

    @model_validator(mode="after")
    def _pages(self) -> Storyboard:
        if self.pages is None:
            if not self.panels:
                raise ValueError("a storyboard needs 'panels' (one page) or 'pages' (several)")
            self.pages = [PageContent(layout=self.layout or "grid-3x3", panels=self.panels)]
            self.layout = self.panels = None
        elif self.panels is not None or self.layout is not None:
            raise ValueError("use either top-level 'layout' + 'panels' or 'pages', not both")
        return self

    def all_panels(self) -> list[PanelSpec]:
        return [p for page in self.pages or [] for p in page.panels]


class StoryError(CharforgeError):
    """A storyboard problem, reported as ``file:line: what; fix``."""


def _panel_line(root: yaml.Node | None, page: int, panel: int, multi: bool) -> int:
    loc = ("pages", page, "panels", panel) if multi else ("panels", panel)
    return line_of(root, loc)


def parse_storyboard(text: str, source: str = "<storyboard>") -> tuple[Storyboard, yaml.Node | None]:
    return parse_yaml_model(text, source, Storyboard, what="a storyboard", error=StoryError)


def load_storyboard(path: str | Path) -> tuple[Storyboard, yaml.Node | None]:
    path = Path(path)
    if not path.is_file():
        raise StoryError(f"{path}: storyboard not found (write one with `charforge comic --example {path}`)")
    return parse_storyboard(path.read_text(encoding="utf-8"), str(path))
