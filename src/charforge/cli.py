"""The ``charforge`` command: a thin layer over :mod:`charforge.api`.

Every error a user can fix is one line on stderr and exit code 2; Ctrl-C during training saves a
checkpoint and exits with 130.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # before transformers is imported anywhere
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import typer  # noqa: E402

from .cli_options import build_options, model_options  # noqa: E402
from .comic.options import ComicOptions  # noqa: E402
from .config import PRESETS, TrainConfig  # noqa: E402
from .data.prepare import PrepareOptions  # noqa: E402
from .errors import CharforgeError, PicturesInterrupted, TrainingInterrupted  # noqa: E402
from .evaluate.options import EvalOptions  # noqa: E402
from .generate.options import EditOptions, GenerateOptions, MaskOptions  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Teach an original character to a diffusion model, generate it, and make comics.",
)

WorkspaceArg = Annotated[Path, typer.Argument(help="The character workspace folder.")]


def _echo_done(label: str, path: Path | str) -> None:
    typer.echo(f"{label}: {path}")


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"charforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print charforge's version and exit."),
    ] = False,
) -> None:
    """Teach an original character to a diffusion model, generate it, and make comics."""


@app.command()
def doctor() -> None:
    """Print what charforge runs on: its version, the libraries, the device and the precision `auto` picks."""
    from .environment import doctor_report

    rows = doctor_report()
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        typer.echo(f"{label:<{width}}  {value}")


# -- init / prepare -------------------------------------------------------------------------------
@app.command()
def init(
    workspace: WorkspaceArg,
    token: Annotated[str, typer.Option(help="Unique identifier for the character, one word (e.g. UnicornGirl, sks).")],
    class_word: Annotated[str, typer.Option(help="What the character is (girl, dog, robot); used for class prompts.")],
    notes: Annotated[str, typer.Option(help="Free-form notes kept in character.yaml.")] = "",
) -> None:
    """Create a character workspace."""
    from . import api

    ws = api.init(workspace, token=token, class_word=class_word, notes=notes)
    _echo_done("workspace", ws.root)


@app.command()
@model_options(PrepareOptions, "Prepare options")
def prepare(
    workspace: WorkspaceArg,
    images: Annotated[list[str], typer.Argument(help="Image files, folders and/or globs (PNG, JPEG, WebP, GIF, BMP, TIFF).")],
    **options: Any,
) -> None:
    """Copy images in: validate, EXIF-rotate, sRGB, transparency onto a background, frame the character, resize."""
    from rich.console import Console
    from rich.table import Table

    from . import api

    report = api.prepare(workspace, images, build_options(PrepareOptions, options.pop("config"), options))
    table = Table(title="prepare")
    for column in ("file", "status", "size", "subject", "notes"):
        table.add_column(column)
    colours = {"ok": "green", "flagged": "yellow", "already there": "dim", "skipped": "red"}
    for f in report.files:
        size = f"{f.size[0]}x{f.size[1]}" if f.size else ""
        share = f"{f.subject_share:.0%}" if f.subject_share is not None else ""
        table.add_row(Path(f.source).name, f"[{colours[f.status]}]{f.status}[/]", size, share, "; ".join(f.reasons))
    Console(stderr=True).print(table)
    for f in report.skipped:
        typer.echo(f"warning: skipped {f.source}: {', '.join(f.reasons)}", err=True)
    again = sum(f.status == "already there" for f in report.files)
    note = f" ({again} already there)" if again else ""
    _echo_done(f"{len(report.written) - again} new image(s){note} prepared in", Path(workspace) / "images")


@app.command()
def caption(
    workspace: WorkspaceArg,
    captioner: Annotated[
        str,
        typer.Option(help="template (no model; DreamBooth default), blip, blip2, florence2, or world (mini-world scenes)."),
    ] = "template",
    model: Annotated[
        Optional[str], typer.Option(help="Hub id or local folder of a compatible model (default per captioner).")
    ] = None,
    template: Annotated[Optional[str], typer.Option(help="For --captioner template: text with {token} and {class_word}.")] = None,
    token_mode: Annotated[
        str, typer.Option(help="prefix: 'TOKEN class, caption'; replace: put TOKEN before the subject noun.")
    ] = "prefix",
    style: Annotated[Optional[str], typer.Option(help="Appended to every caption, e.g. 'drawn by KSH drawing style'.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Also replace captions that were edited by hand.")] = False,
) -> None:
    """Write one caption .txt per image (editable), and images/metadata.jsonl for other trainers."""
    from . import api

    report = api.caption(
        workspace, captioner=captioner, model=model, template=template, token_mode=token_mode, style=style, overwrite=overwrite
    )
    for name, text in report.written.items():
        typer.echo(f"{name}: {text}")
    for name in report.kept:
        typer.echo(f"kept {name}: its caption was edited by hand (--overwrite replaces it)", err=True)
    _echo_done("captions", Path(workspace) / "captions")
    _echo_done("metadata", report.metadata)


@app.command()
def stats(
    workspace: WorkspaceArg,
    colours: Annotated[int, typer.Option(help="Dominant colours per image (the whole set gets two more).")] = 6,
) -> None:
    """Describe the images: sizes, backgrounds, dominant colours, HSV histograms, hue wheel; a stats.html page."""
    from . import api

    report = api.stats(workspace, colours=colours)
    typer.echo("palette: " + ", ".join(f"{s.hex} {s.share:.0%}" for s in report.overall))
    _echo_done("palette", report.palette_json)
    _echo_done("report", report.html)


# -- train ------------------------------------------------------------------------------------------
@app.command(context_settings={"help_option_names": ["-h", "--help"]})
@model_options(TrainConfig, "Training options", skip=("base",))
def train(
    workspace: WorkspaceArg,
    base: Annotated[
        Optional[str],
        typer.Option(help="Base model: hub id, diffusers folder, single-file .safetensors, or world (the mini world)."),
    ] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML file whose keys equal these flags.")] = None,
    preset: Annotated[
        Optional[str], typer.Option(help=f"Named settings: {', '.join(PRESETS)} (lr 1e-4, 1800 steps, 1024 px).")
    ] = None,
    run: Annotated[
        Optional[str], typer.Option(help="Run name (default run-NNN); with --resume, the run to continue (default latest).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run of the same name.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue a run from its newest checkpoint.")] = False,
    **options: Any,
) -> None:
    """Teach the character to a base model (DreamBooth-LoRA by default)."""
    from . import api

    given = {k: v for k, v in options.items() if v is not None}
    if resume:
        extra = sorted(set(given) - {"max_train_steps"})
        if extra:
            raise CharforgeError(
                f"--resume continues with the run's stored config; only --max-train-steps may change (got {', '.join(extra)})"
            )
        result = api.resume(workspace, run=run or "latest", max_train_steps=given.get("max_train_steps"))
    else:
        if base:
            given["base"] = base
        from .config import build_train_config

        cfg = build_train_config(config_file=config, preset=preset, overrides=given)
        result = api.train(workspace, config=cfg, run=run, overwrite=overwrite)
    if result.losses:
        typer.echo(f"loss: first {result.losses[0]:.4f}, last {result.losses[-1]:.4f} over {len(result.losses)} step(s)")
    _echo_done("run", result.run_dir)
    _echo_done("final weights", result.final_dir)


# -- generate ---------------------------------------------------------------------------------------
# Which model and run generate and edit draw with, declared once (the drawing settings are GenerateOptions fields).
RunOpt = Annotated[str, typer.Option(help="Which run of the workspace.")]
CheckpointOpt = Annotated[Optional[int], typer.Option(help="Use this checkpoint step instead of the final weights.")]
LoraOpt = Annotated[Optional[list[str]], typer.Option(help="Extra LoRA as PATH or PATH:WEIGHT; repeat for several.")]
BaseOpt = Annotated[Optional[str], typer.Option(help="Base model (default: the run's).")]
UnsafeOpt = Annotated[bool, typer.Option(help="Allow .ckpt/.bin/.pt pickles (can run code).")]
OutOpt = Annotated[Optional[Path], typer.Option(help="Output folder (default: WORKSPACE/outputs/<time>).")]


@app.command()
@model_options(GenerateOptions, "Drawing")
def generate(
    workspace: Annotated[Optional[Path], typer.Argument(help="Character workspace (its latest run's LoRA is used).")] = None,
    prompt: Annotated[Optional[list[str]], typer.Argument(help="One or more prompts.")] = None,
    prompts: Annotated[Optional[Path], typer.Option(help="A text file with one prompt per line.")] = None,
    run: RunOpt = "latest",
    checkpoint: CheckpointOpt = None,
    lora: LoraOpt = None,
    no_run: Annotated[bool, typer.Option("--no-run", help="Ignore the workspace's runs (base model + --lora only).")] = False,
    base: BaseOpt = None,
    base_config: Annotated[Optional[str], typer.Option(help="Configs for a single-file base, offline.")] = None,
    allow_unsafe_pickle: UnsafeOpt = False,
    out: OutOpt = None,
    **options: Any,
) -> None:
    """Generate images of the character; every PNG carries its parameters (A1111 style)."""
    from . import api
    from .generate.text2image import read_prompts_file

    all_prompts = list(prompt or []) + (read_prompts_file(prompts) if prompts else [])
    if workspace is not None and not (workspace / "character.yaml").exists() and not workspace.is_dir():
        all_prompts.insert(0, str(workspace))  # `charforge generate --base M "prompt"`: no workspace given
        workspace = None
    result = api.generate(
        workspace,
        all_prompts,
        build_options(GenerateOptions, options.pop("config"), options),
        **_drawing_with(run, checkpoint, lora, base, allow_unsafe_pickle, out, use_run=not no_run, base_config=base_config),
    )
    _echo_generated(result)


def _drawing_with(
    run: str, checkpoint: int | None, lora: list[str] | None, base, unsafe: bool, out, *, use_run=True, base_config=None
) -> dict[str, Any]:
    """The model options generate and edit share (``RunOpt`` ... ``OutOpt``), as ``api.generate`` / ``api.edit`` take
    them."""
    from .api import ModelChoice
    from .generate.text2image import LoraSpec

    loras = tuple(LoraSpec.parse(x) for x in lora or [])
    model = ModelChoice(base, run, checkpoint, loras, use_run, allow_unsafe_pickle=unsafe, base_config=base_config)
    return dict(model=model, out_dir=out)


def _echo_generated(result) -> None:
    for note in result.notes:  # what was adjusted in the inputs (a mask converted, resized, nearly empty)
        typer.echo(f"note: {note}", err=True)
    _echo_done(f"{len(result.images)} image(s) in", result.folder)
    _echo_done("contact sheet", result.contact_sheet)


# -- edit and mask -----------------------------------------------------------------------------------
@app.command()
@model_options(EditOptions, "Drawing")
def edit(
    workspace: Annotated[Path, typer.Argument(help="Character workspace (its run's LoRA and identifier are used).")],
    image: Annotated[Path, typer.Argument(help="The picture to edit.")],
    prompt: Annotated[list[str], typer.Argument(help="What to draw, e.g. 'UnicornGirl in a red raincoat'.")],
    run: RunOpt = "latest",
    checkpoint: CheckpointOpt = None,
    lora: LoraOpt = None,
    base: BaseOpt = None,
    allow_unsafe_pickle: UnsafeOpt = False,
    out: OutOpt = None,
    **options: Any,
) -> None:
    """Redraw part of a picture with the character (inpainting inside a mask), or restyle all of it."""
    from . import api

    result = api.edit(
        workspace,
        image,
        list(prompt),
        build_options(EditOptions, options.pop("config"), options),
        **_drawing_with(run, checkpoint, lora, base, allow_unsafe_pickle, out),
    )
    _echo_generated(result)


@app.command("mask")
@model_options(MaskOptions, "Mask")
def mask_command(
    image: Annotated[Path, typer.Argument(help="The picture to make a mask for.")],
    words: Annotated[
        Optional[str], typer.Argument(help="What to mask, e.g. 'clothing' (a detection + segmentation model).")
    ] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Where to write the mask PNG (white = redraw).")] = Path("mask.png"),
    workspace: Annotated[Optional[Path], typer.Option(help="The workspace whose palette --by-colour N reads.")] = None,
    preview: Annotated[bool, typer.Option(help="Also write MASK-preview.png: the picture with the mask tinted.")] = True,
    **options: Any,
) -> None:
    """Make a mask for `charforge edit`: from a palette colour (no model needed) or from words."""
    from . import api

    result = api.mask(
        image,
        words,
        build_options(MaskOptions, options.pop("config"), options),
        workspace=workspace,
        out=out,
        preview_out=out.with_name(out.stem + "-preview.png") if preview else None,
    )
    if result.warning:
        typer.echo(f"warning: {result.warning}", err=True)
    typer.echo(f"mask covers {result.share:.1%} of the picture")
    _echo_done("mask", result.mask)
    if result.preview:
        _echo_done("preview", result.preview)


# -- comic ----------------------------------------------------------------------------------------
@app.command()
@model_options(ComicOptions, "Options")
def comic(
    story: Annotated[Path, typer.Argument(help="The storyboard YAML (with --example: where to write one).")] = Path("story.yaml"),
    example: Annotated[bool, typer.Option(help="Write a commented example storyboard (the thesis' page) to STORY.")] = False,
    overwrite: Annotated[bool, typer.Option(help="With --example: replace an existing file.")] = False,
    **options: Any,
) -> None:
    """Render a storyboard to lettered comic pages (PNG per page and one PDF); pictures are cached per panel."""
    from . import api

    if example:
        _echo_done("example storyboard", api.write_comic_example(story, overwrite=overwrite))
        typer.echo(f"render it with: charforge comic {story}")
        return
    result = api.comic(story, build_options(ComicOptions, options.pop("config"), options))
    typer.echo(f"{result.drawn} picture(s) drawn, {result.cached} from the cache; font: {result.font}")
    if result.redrawn:
        number, used = result.redrawn
        typer.echo(f"panel {number} drawn with seed {used}; put `seed: {used}` in its entry to keep it")
    for page in result.pages:
        _echo_done("page", page)
    _echo_done("pdf", result.pdf)


# -- demo -----------------------------------------------------------------------------------------
# -- evaluate / rate / sweep ------------------------------------------------------------------------
def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise CharforgeError(f"{option} {text!r}: give comma-separated numbers such as 1e-4,5e-5") from exc


def _ints(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise CharforgeError(f"{option} {text!r}: give comma-separated whole numbers such as 300,600") from exc


ClipOption = Annotated[str, typer.Option(help="CLIP model (hub id or folder) for CLIP-I/CLIP-T; 'none' to skip.")]
DinoOption = Annotated[str, typer.Option(help="DINO/DINOv2 model (hub id or folder) for the DINO score; 'none' to skip.")]
PromptsOption = Annotated[
    Optional[Path], typer.Option(help="Prompt set YAML (default: the built-in set; see --example-prompts).")
]


@app.command()
@model_options(EvalOptions, "Evaluation")
def evaluate(
    workspace: Annotated[Optional[Path], typer.Argument(help="The character workspace folder.")] = None,
    run: Annotated[str, typer.Option(help="Run name (default: the newest).")] = "latest",
    promote: Annotated[bool, typer.Option("--promote", help="Copy the best checkpoint to the run's final/.")] = False,
    example_prompts: Annotated[Optional[Path], typer.Option(help="Write the default prompt set here to edit, and stop.")] = None,
    **options: Any,
) -> None:
    """Score every checkpoint of a run (identity, prompt fidelity, palette, quality ratio) and pick the best."""
    from . import api
    from .evaluate.prompts import DEFAULT_PROMPTS

    if example_prompts is not None:
        from . import atomic

        if example_prompts.exists():
            raise CharforgeError(f"{example_prompts} exists; choose another file name")
        atomic.write_text(example_prompts, DEFAULT_PROMPTS.read_text(encoding="utf-8"))
        _echo_done("prompt set", example_prompts)
        return
    if workspace is None:
        raise CharforgeError("give the workspace: charforge evaluate WORKSPACE --run RUN")
    result = api.evaluate(workspace, build_options(EvalOptions, options.pop("config"), options), run=run, promote_best=promote)
    _print_points(result.metrics)
    best = result.best
    typer.echo(f"best: {best.point if best else 'none'} ({result.metrics.rule})" + (" -> promoted to final/" if promote else ""))
    for note in result.metrics.notes:
        typer.echo(f"note: {note}")
    _echo_done("report", result.report)


@app.command()
def push(
    workspace: Annotated[Path, typer.Argument(help="The character workspace folder.")],
    repo: Annotated[str, typer.Option(help="Hub model repository, user/name.")],
    run: Annotated[str, typer.Option(help="Run name (default: the newest).")] = "latest",
    private: Annotated[bool, typer.Option("--private", help="Create the repository private.")] = False,
) -> None:
    """Upload a run's final/ (weights, model card, sample grid) to the Hugging Face Hub.

    Uses the Hub token from HF_TOKEN or `hf auth login`; charforge never prints or stores it."""
    from . import api

    url = api.push(workspace, run=run, repo=repo, private=private)
    _echo_done("pushed", url)


def _print_points(metrics) -> None:
    from rich.console import Console
    from rich.table import Table

    keys = metrics.columns()
    table = Table("point", "images", *keys)
    for p in metrics.points:
        table.add_row(p.label, str(p.images), *("" if p.value(k) is None else f"{p.value(k):.3f}" for k in keys))
    Console().print(table)


@app.command()
def rate(
    workspace: WorkspaceArg,
    run: Annotated[str, typer.Option(help="Run name (default: the newest).")] = "latest",
    rater: Annotated[str, typer.Option(help="Your name, if several people rate.")] = "",
    preview: Annotated[bool, typer.Option(help="Draw the picture in the terminal (24-bit colour).")] = True,
    summary: Annotated[bool, typer.Option("--summary", help="Only print the human vs automated summary.")] = False,
) -> None:
    """Rate an evaluation's pictures by eye (good / flawed + tags); ratings go to ratings.sqlite in the workspace."""
    from . import api
    from .evaluate.evaluate import load_metrics
    from .evaluate.rating_session import RatingSession
    from .evaluate.ratings import TAGS
    from .evaluate.terminal import half_blocks

    ws = api.open_workspace(workspace)
    with RatingSession(ws, run, rater, only_summary=summary) as session:
        todo = session.todo
        typer.echo(f"{len(todo)} pictures to rate ({session.rated} rated); the picture and references: {session.view}")
        for i, row in enumerate(todo, 1):
            session.show(row)
            if preview:
                typer.echo(half_blocks(session.preview(row), width=72))
            auto = "" if row.get("ok") is None else f" (automated: {'pass' if row['ok'] else 'fail'})"
            typer.echo(f"[{i}/{len(todo)}] {row['point']} {row['prompt']} seed {row['seed']}{auto}")
            answer = typer.prompt("g = good, f = flawed, s = skip, q = quit", default="s").strip().lower()
            if answer.startswith("q"):
                break
            if answer.startswith("s") or not answer:
                continue
            if not answer.startswith(("g", "f")):
                typer.echo("answer g, f, s or q; skipped")
                continue
            tags: tuple[str, ...] = ()
            if answer.startswith("f"):
                text = typer.prompt(f"tags, comma-separated ({', '.join(TAGS)}; others allowed)", default="", show_default=False)
                tags = tuple(t.strip() for t in text.split(",") if t.strip())
            session.record(row, answer.startswith("g"), tags)
    result = api.rating_summary(ws, run=run, rater=rater)
    _print_points(load_metrics(ws, run))
    agreement = "n/a" if result["agreement"] is None else f"{result['agreement']:.2f} (kappa {result['kappa']})"
    typer.echo(f"rated {result['rated']}; agreement with the automated verdicts on {result['compared']}: {agreement}")
    if result["tags"]:
        typer.echo("flaws: " + ", ".join(f"{k} {v}" for k, v in result["tags"].items()))


@app.command()
def sweep(
    workspace: WorkspaceArg,
    lr: Annotated[str, typer.Option(help="Learning rates, comma-separated (e.g. 1e-4,5e-5,1e-5).")],
    steps: Annotated[str, typer.Option(help="Training steps, comma-separated (e.g. 1800).")],
    rank: Annotated[Optional[str], typer.Option(help="LoRA ranks, comma-separated (e.g. 4,16).")] = None,
    name: Annotated[str, typer.Option(help="Sweep name (run names start with it).")] = "sweep",
    config: Annotated[Optional[Path], typer.Option(help="Training config YAML shared by every run.")] = None,
    preset: Annotated[Optional[str], typer.Option(help=f"Training preset: {', '.join(PRESETS)}.")] = None,
    base: Annotated[Optional[str], typer.Option(help="Base model (overrides config/preset).")] = None,
    method: Annotated[Optional[str], typer.Option(help="Training method (overrides config/preset).")] = None,
    prompts: PromptsOption = None,
    clip: ClipOption = "default",
    dino: DinoOption = "default",
    eval_steps: Annotated[int, typer.Option(help="Inference steps per evaluation picture.")] = 50,
) -> None:
    """Train and evaluate a grid of learning rates x steps (x ranks), resumably, and compare them."""
    from .recipes.sweep import sweep as run

    result = run(
        workspace,
        learning_rates=_floats(lr, "--lr"),
        steps=_ints(steps, "--steps") or [],
        ranks=_ints(rank, "--rank"),
        name=name,
        config_file=config,
        preset=preset,
        base=base,
        method=method,
        eval_options={"prompts": prompts, "clip": clip, "dino": dino, "steps": eval_steps},
    )
    for row in result.rows:
        best = row["best"] or {}
        typer.echo(f"{row['run']}: best step {best.get('step')} quality ratio {best.get('quality_ratio')}")
    typer.echo(f"winner: {result.winner['run'] if result.winner else 'none'}")
    _echo_done("report", result.report)


@app.command()
def ui(
    home: Annotated[Path, typer.Argument(help="Folder of character workspaces the UI works in (made if missing).")] = Path("."),
    host: Annotated[str, typer.Option(help="Address to bind; other than 127.0.0.1 needs --auth or --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 7860,
    auth: Annotated[
        Optional[str], typer.Option(help="user:password to log in with (or set CHARFORGE_UI_AUTH: not in the process list).")
    ] = None,
    token: Annotated[Optional[str], typer.Option(help="A login token, user name any (or set CHARFORGE_UI_TOKEN).")] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in the default browser.")] = False,
) -> None:
    """The web UI: characters, training with live loss and samples, generation, evaluation and rating, comics."""
    from .ui import serve

    home.mkdir(parents=True, exist_ok=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: --host {host} serves the UI to other machines (behind the login)", err=True)
    from .ui.app import block_until_interrupted

    app, url, queue = serve(home, host=host, port=port, auth=auth, token=token, open_browser=open_browser, block=False)
    typer.echo(f"charforge ui: {url} (home {home.resolve()}); Ctrl-C stops it (a training job checkpoints first)")
    block_until_interrupted(app, queue)


# -- the mini world ----------------------------------------------------------------------------------
world_app = typer.Typer(no_args_is_help=True, help="The mini world: cartoon characters, a small pretrained model, a judge.")
app.add_typer(world_app, name="world")


@world_app.command("build")
def worldbuild_options(
    stage: Annotated[str, typer.Option(help="What to build: all, model, judge, ip-adapter.")] = "all",
    out: Annotated[Optional[Path], typer.Option(help="Model folder to write (default: the one shipped in the package).")] = None,
    work: Annotated[Path, typer.Option(help="Folder for resumable intermediate state.")] = Path(".charforge-world-build"),
    model_steps: Annotated[Optional[int], typer.Option(help="UNet + text encoder steps (default 9000, three cycles).")] = None,
    ip_adapter_steps: Annotated[Optional[int], typer.Option(help="IP-Adapter steps (default 6000).")] = None,
) -> None:
    """Train the mini world's base model, judge and IP-Adapter from scratch (about 2 h 45 on 2 idle CPU cores;
    resumable)."""
    from . import world
    from .world.build import BuildConfig, build_base_model

    logging.getLogger("charforge.world").setLevel(logging.INFO)
    if stage not in ("all", "model", "judge", "ip-adapter"):
        raise CharforgeError(f"unknown stage {stage!r}; valid: all, model, judge, ip-adapter")
    if stage in ("all", "judge"):
        from .world.judge import build_judge

        path = build_judge(world.JUDGE_FILE if out is None else out / "judge.safetensors", work / "judge")
        _echo_done("judge", path)
    if stage in ("all", "model"):
        config = BuildConfig() if model_steps is None else BuildConfig(unet_steps=model_steps)
        path = build_base_model(world.MODEL_DIR if out is None else out / "model", work, config)
        _echo_done("model", path)
    if stage in ("all", "ip-adapter"):  # after the model: it is trained against the base
        from .world.ip_adapter import IP_ADAPTER_DIR, AdapterConfig, train_adapter

        config = AdapterConfig() if ip_adapter_steps is None else AdapterConfig(steps=ip_adapter_steps)
        built = None if out is None else out / "model"  # a model built beside it, else the shipped one
        base = built if built is not None and (built / "model_index.json").is_file() else world.MODEL_DIR
        path = train_adapter(IP_ADAPTER_DIR if out is None else out / "ip_adapter", work / "ip-adapter", config, base)
        _echo_done("IP-Adapter", path)


@world_app.command("demo")
def world_demo(
    folder: Annotated[Path, typer.Argument(help="Folder for the experiment (replaced if an earlier demo made it).")] = Path(
        "charforge-demo"
    ),
    character: Annotated[str, typer.Option(help="Held-out character to teach.")] = "unicorn-girl",
    method: Annotated[
        Optional[str], typer.Option(help="dreambooth-lora (default; pivotal tuning), dreambooth (UNet + text encoder) or lora.")
    ] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps (default 1000).")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Learning rate (default: the thesis' 1e-4).")] = None,
    captions: Annotated[
        Optional[bool],
        typer.Option("--captions/--no-captions", help="Scene captions per reference (default) or the instance prompt."),
    ] = None,
    train_text_encoder: Annotated[
        Optional[bool],
        typer.Option(
            "--train-text-encoder/--no-train-text-encoder",
            help="Train the text encoder too (default; without it the identifier has no meaning of its own).",
        ),
    ] = None,
    train_batch_size: Annotated[Optional[int], typer.Option(help="References per training step (default 4).")] = None,
    train_seed: Annotated[Optional[int], typer.Option(help="Training seed (default 0; runs differ widely).")] = None,
    masked_loss: Annotated[
        Optional[bool], typer.Option("--masked-loss/--no-masked-loss", help="Count the loss on the character only.")
    ] = None,
    backgrounds: Annotated[
        Optional[int], typer.Option(help="Copies of each reference on the world's other backgrounds (default 0).")
    ] = None,
    guidance: Annotated[Optional[float], typer.Option(help="Guidance for every picture (default 5).")] = None,
    eval_every: Annotated[
        Optional[int], typer.Option(help="Score the run every N steps while it trains; the best becomes final/.")
    ] = None,
    stop_when_plateau: Annotated[
        Optional[int], typer.Option(help="With --eval-every: stop after K scores without a better one.")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per test prompt.")] = 4,
    overwrite: Annotated[bool, typer.Option(help="Replace FOLDER even if a demo did not make it.")] = False,
) -> None:
    """The thesis experiment in miniature: teach a held-out character from six renders, score it, write a report."""
    from .recipes.world_experiment import ExperimentConfig, run_experiment

    given = {
        "method": method,
        "steps": steps,
        "learning_rate": learning_rate,
        "captions": captions,
        "train_text_encoder": train_text_encoder,
        "train_batch_size": train_batch_size,
        "train_seed": train_seed,
        "guidance": guidance,
        "masked_loss": masked_loss,
        "backgrounds": backgrounds,
        "eval_every": eval_every,
        "stop_when_plateau": stop_when_plateau,
    }
    config = ExperimentConfig(character=character, seeds=tuple(range(seeds)), **{k: v for k, v in given.items() if v is not None})
    result = run_experiment(folder, config, overwrite=overwrite, log=typer.echo)
    for name, s in result.scores["scores"].items():
        identity = "" if s["identity"] is None else f"identity {s['identity']:.2f} (share {s['identity_share']:.2f})  "
        asked = s["per_attribute"]
        typer.echo(
            f"{name:32s} {identity}prompt fidelity {s['prompt_fidelity']:.2f}  pose {asked.get('pose', 0):.2f}  "
            f"expression {asked.get('expression', 0):.2f}"
        )
    _echo_done("report", result.report)


@world_app.command("compare")
def world_compare(
    folder: Annotated[Path, typer.Argument(help="Folder for the experiments and report.html (cells run before are kept).")],
    methods: Annotated[str, typer.Option(help="Comma-separated methods to compare.")] = "dreambooth,lora,dreambooth-lora",
    characters: Annotated[str, typer.Option(help="Comma-separated held-out characters.")] = "unicorn-girl",
    train_seeds: Annotated[str, typer.Option(help="Comma-separated training seeds.")] = "0",
    steps: Annotated[Optional[int], typer.Option(help="Training steps for every method (default 1000).")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per test prompt.")] = 4,
) -> None:
    """The thesis' method comparison (its Tables 1 and 2) in the mini world: every method on the same characters and
    seeds, with weight size, training time, identity, prompt fidelity and the quality ratio per checkpoint."""
    from .recipes.method_comparison import compare_methods, describe, method_rows, read_cells
    from .recipes.world_experiment import ExperimentConfig

    base = ExperimentConfig(fresh_prompts=0, seeds=tuple(range(seeds)), **({} if steps is None else {"steps": steps}))
    report = compare_methods(
        folder,
        methods=[m.strip() for m in methods.split(",") if m.strip()],
        characters=[c.strip() for c in characters.split(",") if c.strip()],
        train_seeds=_ints(train_seeds, "--train-seeds") or [0],
        base=base,
        log=typer.echo,
    )
    for line in describe(method_rows(read_cells(folder))):
        typer.echo(line)
    _echo_done("report", report)


# The quick start's main job on the embedded default: the same command, with the same options, as `world demo`.
app.command("demo", help="The quick start's main job on the embedded default (the mini world); same as `charforge world demo`.")(
    world_demo
)


@world_app.command("render")
def world_render(
    out: Annotated[Path, typer.Argument(help="Folder for the pictures.")],
    character: Annotated[Optional[str], typer.Option(help="A held-out character: its six reference views.")] = None,
    spec: Annotated[
        Optional[Path], typer.Option(help="YAML: character: {attribute: value}, scenes: [{pose, expression, background}].")
    ] = None,
    size: Annotated[int, typer.Option(help="Picture size in pixels.")] = 256,
) -> None:
    """Draw mini-world pictures: a held-out character's references, or any character from a spec file."""
    from .world.spec import render_to_folder

    for path in render_to_folder(out, character=character, spec=spec, size=size):
        typer.echo(path)


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """Click's exception classes, wherever this typer takes click from.

    typer up to 0.2x uses the ``click`` package; newer typer carries its own copy as ``typer._click``, whose
    exceptions are other classes. Both are caught, so a usage error is click's short message and exit 2
    with every typer version.
    """
    import importlib

    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            exceptions = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(exceptions, name) for name in ("ClickException", "Exit", "Abort") if hasattr(exceptions, name)]
    found += [typer.Exit, typer.Abort]
    return tuple(dict.fromkeys(found))


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    usage_errors = _usage_error_types()
    try:
        if not {"--version", "doctor"} & set(sys.argv[1:2]):  # these must run to say what is wrong
            from .environment import check_requirements

            check_requirements()
        code = app(standalone_mode=False)
    except CharforgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except TrainingInterrupted as exc:
        typer.echo(f"{exc}; continue with `charforge train WORKSPACE --resume`", err=True)
        sys.exit(130)
    except PicturesInterrupted as exc:
        typer.echo(str(exc), err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except usage_errors as exc:
        if hasattr(exc, "show"):  # a usage error or a bad value: click's message with its hints
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        if hasattr(exc, "exit_code"):  # typer.Exit / click's Exit
            sys.exit(exc.exit_code)
        typer.echo("interrupted", err=True)  # Abort: click's Ctrl-C or end of input
        sys.exit(130)
    # Without standalone mode, click returns the exit code of an Exit it caught (Ctrl-C is Exit(130)).
    if isinstance(code, int) and code:
        if code == 130:
            typer.echo("interrupted", err=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
