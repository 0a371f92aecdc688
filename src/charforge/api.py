"""The public Python API. The CLI and the web UI are thin layers over these functions.

from charforge import api
ws = api.init("unicorn-girl", token="UnicornGirl", class_word="girl")
api.prepare(ws, ["drawings/"])
run = api.train(ws, base="stabilityai/stable-diffusion-xl-base-1.0", preset="thesis-sdxl")
api.generate(ws, ["UnicornGirl eating a sandwich"], num_images=4)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from . import atomic
from .comic.options import ComicOptions
from .config import TrainConfig, build_train_config
from .data.captions import CaptionReport, caption_workspace, make_captioner
from .data.prepare import PrepareOptions, PrepareReport, prepare_images
from .data.stats import StatsReport, describe
from .data.uploads import UploadResult, store_uploads
from .errors import CharforgeError
from .evaluate.evaluate import EvalOptions, EvalResult, evaluate_run
from .generate.conditions import Conditions
from .generate.options import DrawOptions, EditOptions, GenerateOptions, MaskOptions
from .generate.painter import Painter, Wearing
from .generate.text2image import LoraSpec, generate_images, new_output_dir
from .train.loop import RunResult, TrainControl
from .train.loop import train as _train
from .workspace import CHARACTER_FILE, Workspace
from .world import MODEL_DIR as _WORLD_MODEL  # noqa: F401  (importing the mini world registers `--base world`, `--captioner world`)

__all__ = [
    "init",
    "open_workspace",
    "prepare",
    "add_drawings",
    "set_caption",
    "list_workspaces",
    "caption",
    "stats",
    "train",
    "resume",
    "run_status",
    "RunStatus",
    "generate",
    "ModelChoice",
    "edit",
    "mask",
    "make_mask",
    "GenerationResult",
    "comic",
    "check_comic",
    "save_storyboard",
    "comic_files",
    "write_comic_example",
    "evaluate",
    "promote",
    "rating_summary",
    "TrainConfig",
]


def init(path: str | Path, *, token: str, class_word: str, notes: str = "", world: str = "") -> Workspace:
    """Create a character workspace (``world``: the mini-world character it is, so the judge can score it)."""
    return Workspace.create(path, token=token, class_word=class_word, notes=notes, world=world)


def open_workspace(path: str | Path | Workspace) -> Workspace:
    return path if isinstance(path, Workspace) else Workspace.open(path)


def prepare(
    workspace: str | Path | Workspace, inputs: Iterable[str | Path], options: PrepareOptions | None = None, **fields: Any
) -> PrepareReport:
    """Validate and normalise images into the workspace with ``options`` (``fields`` set or change some of them:
    ``api.prepare(ws, ["drawings/"], resolution=512)``; an unknown name is an error listing the known ones).

    Bad files are skipped and doubtful ones flagged, each with a reason, in the returned report.
    """
    options = PrepareOptions.build(options, **fields)  # a misspelt option is reported before anything is read
    return prepare_images(open_workspace(workspace), inputs, options)


def list_workspaces(root: str | Path) -> list[Workspace]:
    """The character workspaces directly inside ``root`` (the web UI's home folder), by name."""
    root = Path(root)
    found = [p for p in sorted(root.iterdir()) if (p / CHARACTER_FILE).is_file()] if root.is_dir() else []
    return [Workspace.open(p) for p in found]


def add_drawings(
    workspace: str | Path | Workspace, files: list[tuple[Path, str]], options: PrepareOptions | None = None, **fields: Any
) -> tuple[UploadResult, PrepareReport | None]:
    """Uploaded files (``(temporary path, name sent)``): checked by content, stored under safe names in
    ``uploads/``, then prepared like any input. Returns what was refused at the door and prepare's report."""
    options = PrepareOptions.build(options, **fields)
    ws = open_workspace(workspace)
    uploaded = store_uploads(ws, files)
    report = prepare_images(ws, uploaded.stored, options) if uploaded.stored else None
    return uploaded, report


def set_caption(workspace: str | Path | Workspace, image: str, text: str) -> Path:
    """Write one training image's caption by hand; ``caption`` keeps hand edits unless told to overwrite."""
    ws = open_workspace(workspace)
    matches = [p for p in ws.training_images() if p.name == image or p.stem == image]
    if not matches:
        raise CharforgeError(f"{ws.images_dir}: no training image {image!r}")
    if not text.strip():
        raise CharforgeError(f"the caption of {image} is empty")
    return ws.write_caption(matches[0], text)


def caption(
    workspace: str | Path | Workspace,
    *,
    captioner: str = "template",
    model: str | None = None,
    template: str | None = None,
    token_mode: str = "prefix",
    style: str | None = None,
    overwrite: bool = False,
) -> CaptionReport:
    """Caption every training image (hand-edited captions are kept unless ``overwrite``)."""
    ws = open_workspace(workspace)
    captioner_fn = make_captioner(captioner, ws, model=model, template=template)
    return caption_workspace(ws, captioner_fn, token_mode=token_mode, style=style, overwrite=overwrite)


def stats(workspace: str | Path | Workspace, *, colours: int = 6) -> StatsReport:
    """Describe the images: overview, dominant colours, HSV; writes ``stats/`` with palette.json and stats.html."""
    if not 1 <= colours <= 16:
        raise CharforgeError(f"--colours {colours}: choose between 1 and 16")
    return describe(open_workspace(workspace), colours=colours)


def train(
    workspace: str | Path | Workspace,
    *,
    config: TrainConfig | None = None,
    config_file: str | Path | None = None,
    preset: str | None = None,
    run: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    control: TrainControl | None = None,
    **options: Any,
) -> RunResult:
    """Train a new run; ``options`` are :class:`TrainConfig` fields (they override file and preset).

    ``control``: stop / save now / sample now from another thread (the web UI's buttons). With ``eval_every`` the
    run is scored as it trains and its best scored checkpoint becomes ``final/``."""
    config = config or build_train_config(config_file=config_file, preset=preset, overrides=options)
    ws = open_workspace(workspace)
    watch = _watch(ws, config)
    return _train(ws, config, run_name=run, overwrite=overwrite, show_progress=show_progress, control=control, watch=watch)


def _watch(ws: Workspace, config: TrainConfig):
    if not config.eval_every:
        return None
    from .evaluate.watch import TrainingWatch

    return TrainingWatch(ws, config)


def resume(
    workspace: str | Path | Workspace,
    *,
    run: str = "latest",
    max_train_steps: int | None = None,
    show_progress: bool = True,
    control: TrainControl | None = None,
) -> RunResult:
    """Continue a run from its newest checkpoint with its stored config (optionally for longer)."""
    ws = open_workspace(workspace)
    found = ws.run(run)
    config = build_train_config(config_file=found.config_file, overrides={"max_train_steps": max_train_steps})
    watch = _watch(ws, config)  # scores from before the resume are not carried over: the watch starts again
    return _train(ws, config, run_name=found.name, resume=True, show_progress=show_progress, control=control, watch=watch)


@dataclass
class RunStatus:
    """Where a run stands, read from its folder while it trains (the web UI polls this)."""

    name: str
    steps: list[float]
    losses: list[float]
    samples: list[Path]  # validation grids, oldest first
    checkpoints: list[int]
    finished: bool
    summary: dict[str, Any]
    scores: list[dict] = field(default_factory=list)  # --eval-every's evaluations so far (watch.json)


def run_status(workspace: str | Path | Workspace, *, run: str = "latest") -> RunStatus:
    from .evaluate.watch import read_watch
    from .train.metrics import read_loss

    found = open_workspace(workspace).run(run)
    steps, losses = read_loss(found.folder)
    scores = read_watch(found.folder)
    return RunStatus(
        found.name,
        steps,
        losses,
        found.samples(),
        [step for step, _ in found.checkpoints()],
        found.final_dir.is_dir(),
        found.summary(),
        scores,
    )


@dataclass
class GenerationResult:
    images: list[Path]
    folder: Path
    notes: tuple[str, ...] = ()  # what was adjusted in the inputs (a mask resized, converted, nearly empty)

    @property
    def contact_sheet(self) -> Path:
        return self.folder / "contact-sheet.png"


@dataclass
class RunModel:
    """What a run produced at one point: the model to load, its LoRAs, or a DreamBooth checkpoint whose
    parts (UNet, text encoders) replace the model's."""

    base: str
    loras: list[LoraSpec]
    config: TrainConfig
    finetuned: Path | None = None


@dataclass(frozen=True)
class ModelChoice:
    """Which model draws, the one argument ``generate`` and ``edit`` (and the CLI's and UI's model options) take
    for it: with a workspace that has runs, its ``run``'s result at ``checkpoint`` (its LoRA and identifier, or its
    DreamBooth model) unless ``use_run`` is False; ``base`` instead of the run's base; more ``loras`` on top.
    ``allow_unsafe_pickle`` and ``base_config`` load a base the way a run records them."""

    base: str | None = None
    run: str = "latest"
    checkpoint: int | None = None
    loras: tuple[LoraSpec, ...] = ()
    use_run: bool = True
    allow_unsafe_pickle: bool = False
    base_config: str | None = None

    def resolve(self, ws: Workspace | None) -> _Drawer:
        """What loads and draws: the run's base, LoRAs (the run's first, then these) and loading options."""
        if ws is None or not self.use_run or not (ws.run_names() or self.run != "latest"):
            if self.base is None:
                raise CharforgeError("no model to generate with: pass --base MODEL or train a run first")
            return _Drawer(self.base, list(self.loras), None, self.allow_unsafe_pickle, self.base_config)
        found = resolve_run_model(ws, self.run, self.checkpoint)
        return _Drawer(
            self.base or found.base,
            [*found.loras, *self.loras],
            found.finetuned,
            self.allow_unsafe_pickle or found.config.allow_unsafe_pickle,
            self.base_config or found.config.base_config,
        )


def _refuse_model_fields(fields: dict[str, Any]) -> None:
    """The model is chosen by one argument: say so to a caller that names its parts as drawing options."""
    from dataclasses import fields as names_of

    named = [f.name for f in names_of(ModelChoice) if f.name in fields]
    if named:
        given = ", ".join(f"{n}=..." for n in named)
        raise CharforgeError(f"{given}: the model is chosen with model=api.ModelChoice({given})")


@dataclass(frozen=True)
class _Drawer:
    """A resolved ``ModelChoice``; ``finetuned``: a DreamBooth checkpoint's parts to swap into the base."""

    base: str
    loras: list[LoraSpec]
    finetuned: Path | None
    allow_unsafe_pickle: bool
    base_config: str | None


def resolve_run_model(ws: Workspace, run: str, checkpoint: int | None) -> RunModel:
    """The base model and LoRA (or full model) a run produced, at its final state or a checkpoint.

    A DreamBooth checkpoint holds only what trained (the UNet, and the text encoders with
    ``train_text_encoder``), so it is the run's base with those parts swapped in.
    """
    found = ws.run(run)
    config = found.config()
    weights = found.checkpoint(checkpoint) if checkpoint is not None else found.final()
    if config.method == "dreambooth":
        if checkpoint is not None:
            return RunModel(config.base, [], config, finetuned=weights)
        return RunModel(str(weights), [], config)
    return RunModel(config.base, [LoraSpec(weights)], config)


def generate(
    workspace: str | Path | Workspace | None,
    prompts: list[str],
    options: GenerateOptions | DrawOptions | None = None,
    *,
    model: ModelChoice | None = None,
    out_dir: str | Path | None = None,
    painter: Painter | None = None,
    conditions: Conditions | None = None,
    show_progress: bool = True,
    **fields: Any,
) -> GenerationResult:
    """Generate images with ``options`` (``fields`` set or change some: ``num_images=4, steps=30``; an unknown
    name is an error listing the known ones), drawn by ``model`` (by default the workspace's latest run).

    ``painter``: one to reuse across calls, so each base is loaded once (its own loading options then apply).
    ``conditions``: already-built conditions (``edit`` passes its region) instead of the options' pose and image
    prompt."""
    if not prompts:
        raise CharforgeError("no prompt given")
    _refuse_model_fields(fields)
    options = GenerateOptions.build(options, **fields)
    if conditions is None:
        conditions = options.conditions()
    elif options.has_conditions:
        raise CharforgeError("give the pose / image prompt as options or as conditions, not both")
    ws = open_workspace(workspace) if workspace is not None else None
    drawn = (model or ModelChoice()).resolve(ws)
    painter = painter or Painter(allow_unsafe_pickle=drawn.allow_unsafe_pickle, base_config=drawn.base_config)
    loaded = painter.wear(drawn.base, Wearing.of(drawn.loras, drawn.finetuned))
    conditions, controlnet = painter.condition(drawn.base, conditions)
    if out_dir is None:
        out_dir = new_output_dir(ws.outputs_dir if ws else Path("outputs"))
    folder = Path(out_dir)
    paths = generate_images(
        loaded,
        prompts,
        folder,
        options.pick(DrawOptions),
        width=options.width,
        height=options.height,
        loras=drawn.loras,
        conditions=conditions,
        controlnet=controlnet,
        show_progress=show_progress,
    )
    return GenerationResult(paths, folder, conditions.notes)


def edit(
    workspace: str | Path | Workspace | None,
    image: str | Path,
    prompts: list[str],
    options: EditOptions | None = None,
    *,
    model: ModelChoice | None = None,
    out_dir: str | Path | None = None,
    painter: Painter | None = None,
    show_progress: bool = True,
    **fields: Any,
) -> GenerationResult:
    """Redraw ``image`` with the taught character: inside a mask (inpainting; white is redrawn), or all of it
    (no mask: restyling at ``strength``, 0.5 unless given). The mask is a picture (``mask``), or made here from
    ``mask_words`` or a palette colour (``by_colour``, ``tolerance``), grown by ``dilate`` pixels; ``restyle``
    True / False insists on no mask / a mask. ``options`` are :class:`EditOptions` (``fields`` set some);
    ``model`` chooses what draws, as in ``generate``."""
    _refuse_model_fields(fields)
    options = EditOptions.build(options, **fields)
    region = _edit_region(image, workspace, options)
    conditions = options.conditions(image, region)
    return generate(
        workspace,
        prompts,
        options.pick(DrawOptions),
        model=model,
        out_dir=out_dir,
        painter=painter,
        conditions=conditions,
        show_progress=show_progress,
    )


def _edit_region(image, workspace, options: EditOptions):
    """The one rule for what ``edit`` redraws: at most one way to give the mask, and none with ``restyle``."""
    mask, mask_words, by_colour, restyle = options.mask, options.mask_words, options.by_colour, options.restyle
    given = [x for x in (mask, mask_words, by_colour) if x is not None]
    if len(given) > 1:
        raise CharforgeError("give one of --mask, --mask-words, --by-colour")
    if restyle is False and not given:
        raise CharforgeError("give a mask (--mask, --mask-words or --by-colour), or --restyle to redraw the whole picture")
    if restyle and given:
        raise CharforgeError("--restyle redraws the whole picture; leave out the mask, or leave out --restyle")
    if mask_words is None and by_colour is None:
        return mask
    return make_mask(
        image, mask_words, workspace=workspace, by_colour=by_colour, tolerance=options.tolerance, dilate=options.dilate
    )


def make_mask(
    image: str | Path,
    words: str | None = None,
    options: MaskOptions | None = None,
    *,
    workspace: str | Path | Workspace | None = None,
    **fields: Any,
) -> Image.Image:
    """A mask for editing ``image`` (white = redraw): its pixels of a palette colour (``by_colour``: the workspace
    palette's number as ``charforge stats`` lists it, or ``#rrggbb``), or what ``words`` name (a detection +
    segmentation model, ``generate.segment``); grown by ``dilate`` and softened by ``feather`` pixels."""
    from .generate import masks

    options = MaskOptions.build(options, **fields)
    by_colour = options.by_colour
    picture = masks.open_picture(image, "image")
    if (by_colour is None) == (words is None):
        raise CharforgeError("give either words naming what to mask or --by-colour")
    if by_colour is not None:
        if workspace is None and not by_colour.startswith("#"):
            raise CharforgeError(f"--by-colour {by_colour}: a palette number needs --workspace (or give #rrggbb)")
        palette = open_workspace(workspace).root / "stats" / "palette.json" if workspace is not None else Path()
        region = masks.colour_mask(picture, masks.palette_colour(palette, by_colour), options.tolerance)
    else:
        from .generate.segment import mask_from_words

        region = mask_from_words(
            picture,
            words,
            model=options.model,
            box_threshold=options.box_threshold,
            mask_threshold=options.mask_threshold,
            sources=tuple(options.model_path) if options.model_path else None,
        )
    return masks.grow(region, options.dilate, options.feather)


def mask(
    image: str | Path,
    words: str | None = None,
    options: MaskOptions | None = None,
    *,
    out: str | Path,
    preview_out: str | Path | None = None,
    workspace: str | Path | Workspace | None = None,
    **fields: Any,
) -> MaskResult:
    """``make_mask``'s mask written to ``out`` (and the picture with it tinted to ``preview_out``), with its share
    of the picture and a warning when that share is almost all or almost nothing."""
    from .generate import masks

    region = make_mask(image, words, options, workspace=workspace, **fields)
    written = _save_picture(region, Path(out))
    shown = None
    if preview_out:
        shown = _save_picture(masks.preview(masks.open_picture(image, "image"), region), Path(preview_out))
    return MaskResult(written, shown, masks.share(region), masks.share_warning(region, f"mask {Path(out).name}"))


def _save_picture(picture: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return path


@dataclass
class MaskResult:
    mask: Path
    preview: Path | None
    share: float  # of the picture that would be redrawn
    warning: str | None


def comic(
    story: str | Path,
    options: ComicOptions | None = None,
    *,
    painter: Any = None,
    show_progress: bool = True,
    **fields: Any,
):
    """Render a storyboard to pages (PNG + one PDF) with ``options`` (``fields`` set some: ``out=``, ``panel=``,
    ``seed=``); see :mod:`charforge.comic`. Returns a ``ComicResult``."""
    from .comic.render import render_comic

    options = ComicOptions.build(options, **fields)
    return render_comic(story, options.out, painter=painter, panel=options.panel, seed=options.seed, show_progress=show_progress)


def check_comic(story: str | Path) -> None:
    """Validate a storyboard without drawing: raises a ``StoryError`` naming ``file:line`` and what is wrong."""
    from .comic.render import Story

    Story.load(story)


def save_storyboard(story: str | Path, text: str) -> Path:
    """Write a storyboard's text (the web UI's editor) atomically; check it with :func:`check_comic`."""
    from . import atomic

    if not text.strip():
        raise CharforgeError(f"{story}: the storyboard is empty")
    story = Path(story)
    atomic.write_text(story, text if text.endswith("\n") else text + "\n")
    return story


def comic_files(story: str | Path, out: str | Path | None = None) -> tuple[list[Path], Path | None]:
    """The pages and the PDF the last render of ``story`` wrote (into ``out``, default: beside it, as ``comic``)."""
    from .comic.render import output_folder, pdf_path

    story = Path(story)
    folder = output_folder(story, out)
    pages = sorted(folder.glob("page-*.png")) if folder.is_dir() else []
    pdf = pdf_path(story, folder)
    return pages, pdf if pdf.is_file() else None


def write_comic_example(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the commented example storyboard (nine panels, two characters, narration and dialogue)."""
    from . import atomic
    from .comic import EXAMPLE

    path = Path(path)
    if path.exists() and not overwrite:
        raise CharforgeError(f"{path} exists; pass --overwrite or choose another file name")
    atomic.write_text(path, EXAMPLE.read_text(encoding="utf-8"))
    return path


def evaluate(
    workspace: str | Path | Workspace,
    options: EvalOptions | None = None,
    *,
    run: str = "latest",
    promote_best: bool = False,
    show_progress: bool = True,
    **fields: Any,
) -> EvalResult:
    """Draw the evaluation prompt set at every checkpoint, score it, pick the best checkpoint, with ``options``
    (``fields`` set some). With ``promote_best`` the best checkpoint becomes the run's ``final/``. Returns an
    ``EvalResult`` (``metrics``, ``report``)."""
    options = EvalOptions.build(options, **fields)
    ws = open_workspace(workspace)
    result = evaluate_run(ws, run, options, show_progress=show_progress)
    if promote_best:
        if not result.best:
            raise CharforgeError("no trained checkpoint to promote")
        promote(ws, run=run, step=result.best.step)
    return result


def promote(workspace: str | Path | Workspace, *, run: str = "latest", step: int) -> Path:
    """Make checkpoint ``step`` the run's ``final/`` (the previous one is kept as ``final-before-promote/``)."""
    from .train.export import promote as _promote

    ws = open_workspace(workspace)
    return _promote(ws, ws.run(run), step)


def push(workspace: str | Path | Workspace, *, run: str = "latest", repo: str, private: bool = False) -> str:
    """Upload the run's ``final/`` to the Hugging Face Hub as model repository ``repo``; returns its URL."""
    from .publish import push_folder

    return push_folder(open_workspace(workspace).run(run).final(), repo, private=private)


def rating_summary(workspace: str | Path | Workspace, *, run: str = "latest", rater: str = "") -> dict:
    """Human quality ratio per checkpoint from the stored ratings, beside the automated one, with their
    agreement; written into the run's ``metrics.json`` and report."""
    from .evaluate.evaluate import load_metrics, write_metrics
    from .evaluate.ratings import RatingStore, human_summary

    ws = open_workspace(workspace)
    metrics = load_metrics(ws, run)
    eval_dir = ws.run_dir(run) / "eval"
    with RatingStore(ws.root / "ratings.sqlite") as store:
        ratings = store.all(metrics.run, [r["file"] for r in metrics.images], eval_dir, rater)
    summary = human_summary(metrics.images, ratings)
    for point in metrics.points:
        point.human_ratio = summary["points"].get(point.point, {}).get("human_ratio")
    metrics.human = summary
    write_metrics(ws, run, metrics)
    return summary
