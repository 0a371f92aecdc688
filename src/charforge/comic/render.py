"""A storyboard becomes pages: check it, lay out the panels, paint or reuse each picture, letter, save.

Outputs (in ``--out``, default a folder named after the storyboard beside it): ``page-01.png`` ...,
one multi-page ``<name>.pdf``, a ``page-01.json`` sidecar per page (panel boxes, the parameters
and cache key of every picture, the font used), and ``panels/`` (the picture cache).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml
from PIL import Image, ImageColor, ImageDraw
from tqdm.auto import tqdm

from .. import atomic
from ..digest import folder_digest
from ..errors import CharforgeError
from ..generate.picture_cache import PictureCache
from ..generate.schedulers import model_sampler
from ..models.loading import model_location, square_only
from ..progress import report as progress_report
from . import layout as layouts
from .fonts import FontSource, font_source
from .lettering import INK, draw_balloon, draw_narration, draw_sound, layout_balloon, layout_narration
from .panels import (
    DiffusersPainter,
    PanelJob,
    PanelPainter,
    fit_around_subject,
    generation_size,
    join_regions,
    paint,
    subject_box,
)
from .schema import REFERENCE, PanelSpec, Storyboard, StoryError, line_of, load_storyboard

FRAMING_WORDS = {"close-up": "close-up", "medium": "medium shot", "wide": "wide shot"}


@dataclass
class ComicResult:
    pages: list[Path]
    pdf: Path
    folder: Path
    drawn: int  # pictures generated this time (the rest came from the cache)
    cached: int
    font: str
    sidecars: list[Path] = field(default_factory=list)
    redrawn: tuple[int, int] | None = None  # (panel, seed) when one panel was redrawn


@dataclass
class _Panel:
    number: int  # 1-based over the whole story
    page: int
    spec: PanelSpec
    loc: tuple  # where the panel is in the YAML, for messages
    rect: layouts.Rect | None = None


class Story:
    """A validated storyboard with its file's location and line map, resolved against its folder."""

    def __init__(self, path: Path, board: Storyboard, root: yaml.Node | None, multi_page: bool) -> None:
        self.path, self.board, self.root, self.multi = path, board, root, multi_page
        self.folder = path.parent
        self._digests: dict[Path, str] = {}  # a LoRA used by many panels is hashed once per render

    def digest(self, path: Path) -> str:
        if path not in self._digests:
            self._digests[path] = folder_digest(path)
        return self._digests[path]

    @classmethod
    def load(cls, path: str | Path) -> Story:
        path = Path(path)
        board, root = load_storyboard(path)
        multi = isinstance(root, yaml.MappingNode) and any(k.value == "pages" for k, _ in root.value)
        story = cls(path, board, root, multi)
        story.check()
        return story

    def error(self, loc: tuple, message: str) -> StoryError:
        return StoryError(f"{self.path}:{line_of(self.root, loc)}: {message}")

    def page_loc(self, page: int) -> tuple:
        return ("pages", page) if self.multi else ()

    def panels(self) -> list[_Panel]:
        out, number = [], 0
        for p, page in enumerate(self.board.pages or []):
            for i, spec in enumerate(page.panels):
                number += 1
                out.append(_Panel(number, p, spec, self.page_loc(p) + ("panels", i)))
        return out

    def resolve_path(self, value: Path) -> Path:
        return value if value.is_absolute() else self.folder / value

    def base_model(self) -> str:
        base = model_location(self.board.model.base)  # `world` -> the shipped model's folder
        local = self.resolve_path(Path(base))
        return str(local) if local.exists() else base

    @cached_property
    def guidance(self) -> float:
        """The board's model entry's guidance, else what the model recommends (read once per render, not per panel)."""
        from ..models.loading import recommended_guidance

        model = self.board.model
        return model.guidance if model.guidance is not None else recommended_guidance(self.base_model())

    # -- semantic checks (the schema checked types; these need the whole story) ---------------------
    def check(self) -> None:
        board = self.board
        for name, character in board.characters.items():
            if character.lora is not None and not self.resolve_path(character.lora).exists():
                raise self.error(
                    ("characters", name, "lora"),
                    f"character {name!r}: LoRA {character.lora} not found (paths are relative to the storyboard); "
                    "fix the path or train it first with `charforge train`",
                )
        for p, page in enumerate(board.pages or []):
            where = self.page_loc(p) + ("layout",)
            try:
                count = layouts.panel_count(page.layout)
            except layouts.LayoutError as exc:
                raise self.error(where, f"{exc}") from exc
            if count != len(page.panels):
                name = page.layout if isinstance(page.layout, str) else "this layout"
                raise self.error(
                    where,
                    f"{name} has {count} panels but the page lists {len(page.panels)}; "
                    "add or remove panels, or choose another layout",
                )
        for panel in self.panels():
            self._check_panel(panel)
        if board.lettering.font is not None:
            try:
                font_source(self.resolve_path(board.lettering.font))
            except CharforgeError as exc:
                raise self.error(("lettering", "font"), str(exc)) from exc

    def _check_panel(self, panel: _Panel) -> None:
        spec, loc = panel.spec, panel.loc
        texts = [(spec.prompt, loc + ("prompt",))] + [
            (r.prompt, loc + ("regions", i, "prompt")) for i, r in enumerate(spec.regions or [])
        ]
        for text, where in texts:
            for name in REFERENCE.findall(text):
                if name not in self.board.characters:
                    raise self.error(where, f"panel {panel.number}: unknown character {{{name}}}; {self._known()}")
        named = [(spec.characters or [], loc + ("characters",))] + [
            (r.characters or [], loc + ("regions", i, "characters")) for i, r in enumerate(spec.regions or [])
        ]
        named += [([b.speaker], loc + ("balloons", i, "speaker")) for i, b in enumerate(spec.balloons) if b.speaker]
        for names, where in named:
            for name in names:
                if name not in self.board.characters:
                    raise self.error(where, f"panel {panel.number}: unknown character {name!r}; {self._known()}")
        if spec.location is not None and spec.location not in self.board.locations:
            known = ", ".join(self.board.locations) or "none defined: add a 'locations:' section"
            raise self.error(loc + ("location",), f"panel {panel.number}: unknown location {spec.location!r} (known: {known})")
        files = [((key,), getattr(spec, key)) for key in ("image", "sketch")]
        for outer in ("image_prompt", "edit"):
            inner = getattr(spec, outer)
            if inner is not None:
                files += [((outer, key), getattr(inner, key)) for key in ("image", "mask")]
        for keys, value in files:
            if value is not None and not self.resolve_path(value).is_file():
                name = ".".join(keys)
                raise self.error(loc + keys, f"panel {panel.number}: {name} {value} not found (relative to the storyboard)")

    def _known(self) -> str:
        names = ", ".join(self.board.characters) or "none"
        return f"define it under 'characters:' (defined: {names})"

    # -- jobs ----------------------------------------------------------------------------------------
    def prompt(self, text: str, spec: PanelSpec) -> str:
        for name, character in self.board.characters.items():
            text = text.replace("{" + name + "}", character.prompt)
        parts = [text.strip()]
        if spec.framing:
            parts.append(FRAMING_WORDS[spec.framing])
        if spec.location:
            parts.append(self.board.locations[spec.location].prompt)
        if self.board.style:
            parts.append(self.board.style)
        return ", ".join(p for p in parts if p)

    def loras(self, text: str, names: list[str] | None) -> tuple[tuple[str, float, str], ...]:
        chosen = names if names is not None else REFERENCE.findall(text)
        out = []
        for name in dict.fromkeys(chosen):
            character = self.board.characters[name]
            if character.lora is not None:
                path = self.resolve_path(character.lora)
                out.append((str(path), character.weight, self.digest(path)))
        return tuple(out)

    def seed(self, panel: _Panel) -> int:
        spec = panel.spec
        if spec.seed is not None:
            return spec.seed
        if spec.location and self.board.locations[spec.location].seed is not None:
            return int(self.board.locations[spec.location].seed)
        return panel.number

    def jobs(self, panel: _Panel, painter: PanelPainter, seed: int) -> list[tuple[PanelJob, float]]:
        """The picture jobs of a panel with their width shares (one job, or one per region)."""
        spec, model = panel.spec, self.board.model
        base = self.base_model()
        native, multiple = painter.geometry(base)
        square = square_only(base)
        rect = panel.rect
        assert rect is not None
        parts = (
            [
                (r.prompt, r.characters, r.width, r.seed if r.seed is not None else seed + 101 * (i + 1))
                for i, r in enumerate(spec.regions)
            ]
            if spec.regions
            else [(spec.prompt, spec.characters, 1.0, seed)]
        )
        total = sum(p[2] for p in parts)

        def file(value: Path | None) -> tuple[str, str] | None:
            if value is None:
                return None
            path = self.resolve_path(value)
            return str(path), self.digest(path)

        ip, edit = spec.image_prompt, spec.edit
        drawn_from = dict(
            sketch=file(spec.sketch),
            image_prompt=file(ip.image) if ip else None,
            ip_adapter=ip.adapter if ip else "",
            ip_scale=ip.scale if ip else None,
            ip_preset=ip.preset if ip else None,
            ip_mask=file(ip.mask) if ip else None,
            edit=file(edit.image) if edit else None,
            edit_mask=file(edit.mask) if edit else None,
            mask_words=edit.mask_words if edit else None,
            edit_strength=edit.strength if edit else None,
        )
        out = []
        for text, names, share, part_seed in parts:
            aspect = rect.width * share / total / max(1, rect.height)
            width, height = generation_size(native, multiple, aspect, spec.size or model.size, square=square)
            job = PanelJob(
                prompt=self.prompt(text, spec),
                negative=spec.negative if spec.negative is not None else self.board.negative,
                seed=part_seed,
                steps=spec.steps or model.steps,
                guidance=spec.guidance if spec.guidance is not None else self.guidance,
                width=width,
                height=height,
                sampler=model_sampler(model.sampler, base),
                base=base,
                loras=self.loras(text, names),
                strength=spec.strength,
                **drawn_from,
            )
            out.append((job, share))
        return out


def _colour(value: str, where: str) -> tuple[int, int, int]:
    try:
        return ImageColor.getrgb(value)[:3]
    except ValueError as exc:
        raise CharforgeError(f"{where}: {value!r} is not a colour (a name such as white, or #rrggbb)") from exc


def _fit_line(text: str, fonts: FontSource, size: int, width: int):
    while size > 8 and fonts.at(size).getlength(text) > width:
        size -= 1
    return fonts.at(size)


def output_folder(story: Path, out: str | Path | None = None) -> Path:
    """Where a storyboard's pages go: ``out``, or a folder named after it beside it (``story.yaml`` -> ``story/``)."""
    return Path(out) if out is not None else story.with_suffix("")


def pdf_path(story: Path, folder: Path) -> Path:
    return folder / f"{story.stem}.pdf"


def render_comic(
    path: str | Path,
    out: str | Path | None = None,
    *,
    painter: PanelPainter | None = None,
    panel: int | None = None,
    seed: int | None = None,
    show_progress: bool = True,
) -> ComicResult:
    """Render every page of the storyboard at ``path``; ``panel``/``seed`` redraw one panel with a new seed."""
    story = Story.load(path)
    board = story.board
    story_path = Path(path)
    folder = output_folder(story_path, out)
    folder.mkdir(parents=True, exist_ok=True)
    painter = painter or DiffusersPainter()
    cache = PictureCache(folder / "panels")
    fonts = font_source(story.resolve_path(board.lettering.font) if board.lettering.font else None)
    all_panels = story.panels()
    seed = _redraw_seed(story, folder, all_panels, panel, seed)

    page_w, page_h = board.page.pixels()
    margin, gutter = board.page.margin, board.page.gutter
    background = _colour(board.page.background, f"{story_path}: page.background")
    n_pages = len(board.pages or [])
    title_h = int(0.07 * page_h) if board.title else 0
    credits_h = int(0.03 * page_h) if board.credits else 0

    pages: list[Image.Image] = []
    sidecars: list[dict] = []
    drawn = cached = 0
    progress = tqdm(total=len(all_panels), desc="panels", unit="panel", disable=not show_progress)
    for p, content in enumerate(board.pages or []):
        top = margin + (title_h if p == 0 else 0)
        bottom = page_h - margin - (credits_h if p == n_pages - 1 else 0)
        area = layouts.Rect(margin, top, page_w - margin, bottom)
        try:
            rects = layouts.layout_panels(content.layout, area, gutter, board.page.direction)
        except layouts.LayoutError as exc:
            raise story.error(story.page_loc(p) + ("layout",), str(exc)) from exc
        page = Image.new("RGB", (page_w, page_h), background)
        info = {"page": p + 1, "size": [page_w, page_h], "font": fonts.label, "panels": []}
        for item, rect in zip([x for x in all_panels if x.page == p], rects, strict=True):
            item.rect = rect
            panel_seed = seed if (seed is not None and item.number == panel) else story.seed(item)
            record = _draw_panel(page, item, story, painter, cache, fonts, panel_seed)
            drawn += record.pop("drawn")
            cached += record.pop("from_cache")
            info["panels"].append({"number": item.number, "box": list(rect.box()), **record})
            progress.update(1)
            progress_report("comic: panels", item.number, len(all_panels))
        _title_and_credits(page, board, fonts, p, n_pages, title_h, credits_h, margin)
        pages.append(page)
        sidecars.append(info)
    progress.close()

    page_paths, sidecar_paths, pdf = _save_pages(pages, sidecars, folder, pdf_path(story_path, folder), board.page.dpi)
    redrawn = (panel, seed) if panel is not None and seed is not None else None
    return ComicResult(page_paths, pdf, folder, drawn, cached, fonts.label, sidecar_paths, redrawn)


def _redraw_seed(story: Story, folder: Path, panels: list, panel: int | None, seed: int | None) -> int | None:
    """The seed ``--panel N`` redraws with: ``seed``, else the one after the seed it was last drawn with."""
    if panel is not None and not 1 <= panel <= len(panels):
        raise CharforgeError(f"--panel {panel}: the storyboard has panels 1 to {len(panels)}")
    if seed is not None and panel is None:
        raise CharforgeError("--seed needs --panel N: it redraws one panel with that seed")
    if panel is not None and seed is None:
        last = _last_seed(folder, panel)
        seed = (last if last is not None else story.seed(panels[panel - 1])) + 1
    return seed


def _draw_panel(page: Image.Image, item, story: Story, painter, cache: PictureCache, fonts: FontSource, seed: int) -> dict:
    """One panel drawn (or taken from the cache), framed to its box, lettered and pasted on the page; its record."""
    rect = item.rect
    picture, record = _picture(story, item, painter, cache, seed)
    picture = fit_around_subject(picture, rect.size)
    _letter(picture, item, story, fonts)
    page.paste(picture, (rect.x0, rect.y0))
    border = story.board.page.border
    if border:
        ImageDraw.Draw(page).rectangle((rect.x0, rect.y0, rect.x1 - 1, rect.y1 - 1), outline=INK, width=border)
    return record


def _save_pages(
    pages: list[Image.Image], sidecars: list[dict], folder: Path, pdf: Path, dpi: int
) -> tuple[list[Path], list[Path], Path]:
    """Each page as a PNG with its JSON sidecar, and all of them as one PDF, each written atomically."""
    page_paths, sidecar_paths = [], []
    for i, (page, info) in enumerate(zip(pages, sidecars, strict=True)):
        target = folder / f"page-{i + 1:02d}.png"
        with atomic.atomic_path(target) as tmp:
            page.save(tmp, format="PNG", dpi=(dpi, dpi))
        page_paths.append(target)
        side = target.with_suffix(".json")
        atomic.write_text(side, json.dumps(info, indent=2))
        sidecar_paths.append(side)
    with atomic.atomic_path(pdf) as tmp:
        pages[0].save(tmp, format="PDF", save_all=True, append_images=pages[1:], resolution=float(dpi))
    return page_paths, sidecar_paths, pdf


def _last_seed(folder: Path, panel: int) -> int | None:
    """The seed panel ``panel`` was drawn with at the last render (from the pages' JSON sidecars), if any."""
    for side in sorted(folder.glob("page-*.json")):
        try:
            info = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for record in info.get("panels", []):
            if record.get("number") == panel and isinstance(record.get("seed"), int):
                return record["seed"]
    return None


def _picture(story: Story, item: _Panel, painter: PanelPainter, cache: PictureCache, seed: int) -> tuple[Image.Image, dict]:
    spec = item.spec
    if spec.image is not None:
        path = story.resolve_path(spec.image)
        try:
            with Image.open(path) as image:
                return image.convert("RGB"), {"image": str(path), "drawn": 0, "from_cache": 0}
        except OSError as exc:
            raise story.error(item.loc + ("image",), f"panel {item.number}: cannot read {spec.image} ({exc})") from exc
    jobs = story.jobs(item, painter, seed)
    images, keys, drawn = [], [], 0
    for job, _ in jobs:
        image, fresh = paint(job, painter, cache)
        images.append(image)
        keys.append({"key": job.key(), "prompt": job.prompt, "seed": job.seed, "size": [job.width, job.height]})
        drawn += fresh
    rect = item.rect
    assert rect is not None
    picture = images[0] if len(images) == 1 else join_regions(images, [s for _, s in jobs], rect.size)
    return picture, {"seed": seed, "pictures": keys, "drawn": drawn, "from_cache": len(jobs) - drawn}


def _letter(picture: Image.Image, item: _Panel, story: Story, fonts: FontSource) -> None:
    """Narration first (it sits in corners), then balloons in the quiet parts, then sound effects."""
    lettering, direction = story.board.lettering, story.board.page.direction
    size_range = dict(max_size=lettering.size, min_size=lettering.min_size)
    taken: list[tuple[float, ...]] = []
    inset = story.board.page.border + 4
    for i, spec in enumerate(item.spec.narration):
        where = f"{story.path}:{line_of(story.root, item.loc + ('narration', i))}: panel {item.number}"
        caption = layout_narration(spec, fonts, picture.size, inset=inset, where=where, **size_range)
        draw_narration(picture, caption, fonts)
        taken.append(caption.box)
    reference = picture.copy()  # placement reads the picture, not the balloons already drawn
    figure = subject_box(reference)
    for i, spec in enumerate(item.spec.balloons):
        if spec.tail is None:
            spec = spec.model_copy(update={"tail": _speaker_point(item.spec, spec.speaker) or "bottom"})
        where = f"{story.path}:{line_of(story.root, item.loc + ('balloons', i))}: panel {item.number}"
        balloon = layout_balloon(
            spec, fonts, reference, taken, direction=direction, order=i, where=where, avoid=figure, **size_range
        )
        draw_balloon(picture, balloon, fonts)
        taken.append(balloon.box)
    for i, spec in enumerate(item.spec.sounds):
        colour = _colour(spec.colour, f"{story.path}:{line_of(story.root, item.loc + ('sounds', i))}: sound colour")
        draw_sound(picture, spec, fonts, colour)


def _speaker_point(spec: PanelSpec, speaker: str | None) -> tuple[float, float] | None:
    """In a two-shot, a balloon's tail points at its speaker's half of the panel."""
    if not speaker or not spec.regions:
        return None
    total, x = sum(r.width for r in spec.regions), 0.0
    for region in spec.regions:
        names = region.characters if region.characters is not None else REFERENCE.findall(region.prompt)
        if speaker in names:
            return (x + region.width / 2) / total, 0.55
        x += region.width
    return None


def _title_and_credits(
    page, board: Storyboard, fonts: FontSource, p: int, n_pages: int, title_h: int, credits_h: int, margin: int
):
    draw = ImageDraw.Draw(page)
    width = page.width - 2 * margin
    if board.title and p == 0:
        font = _fit_line(board.title, fonts, int(title_h * 0.62), width)
        draw.text((page.width / 2, margin + title_h * 0.45), board.title, font=font, fill=INK, anchor="mm")
    if board.credits and p == n_pages - 1:
        font = _fit_line(board.credits, fonts, int(credits_h * 0.6), width)
        draw.text((page.width - margin, page.height - margin - credits_h * 0.4), board.credits, font=font, fill=INK, anchor="rm")
