"""The one training loop. Methods plug in through :mod:`charforge.train.methods`; model families
through :mod:`charforge.models.adapters`.

Every random draw of a step (which images, which timesteps, which noise) comes from a generator
seeded by (seed, micro-step, process), so a resumed run repeats exactly what an uninterrupted run
would have done, with no RNG state to save.
"""

from __future__ import annotations

import logging
import math
import shutil
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import atomic, progress
from ..config import TrainConfig
from ..errors import CharforgeError, TrainingInterrupted
from ..models import latents as vae_latents
from ..models.adapters import FamilyAdapter, PromptEmbeds, adapter_for
from ..models.loading import BaseModel, denoiser, load_base_model, native_resolution, recommended_guidance, size_multiple
from ..run import Run
from ..workspace import Workspace
from . import checkpoint as ckpt
from .data_cache import LatentSet, PixelSet, encode_latents, encode_prompts, load_pixels, loss_weights, same_size
from .export import promote, training_facts, write_result
from .methods import Trainable, setup_trainable
from .metrics import LossLog
from .objective import FlowMatching, NoisePrediction, objective_for
from .parking import Parking, frozen_after_caching
from .prior import ensure_class_images
from .prompts import training_prompts
from .validation import validation_grid

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    final_dir: Path
    steps: int
    losses: list[float]


# -- 1. settings ----------------------------------------------------------------------------------
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str) -> str:
    """``auto``: fp16 on CUDA (bf16 where supported), bf16 on CPUs with native bf16, else fp32."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        if cuda:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_native_bf16() else "no"
    if requested == "fp16" and not cuda:
        raise CharforgeError("--mixed-precision fp16 needs a CUDA GPU; on CPU use bf16 or no")
    return requested


def resolution_multiple(pipe) -> int:
    """Side lengths must be multiples of this: the model's own multiple (:func:`size_multiple`), and 8, which
    diffusers' SD pipelines insist on."""
    return math.lcm(8, size_multiple(pipe))


def check_resolution(resolution: int, pipe, family_label: str) -> None:
    multiple = resolution_multiple(pipe)
    if resolution % multiple:
        lower = max(multiple, resolution // multiple * multiple)
        raise CharforgeError(
            f"--resolution {resolution} is not a multiple of {multiple}, which this {family_label} model needs; "
            f"try {lower} or {lower + multiple}"
        )


# -- 2. the run folder ----------------------------------------------------------------------------
def check_family_options(config: TrainConfig, family) -> None:
    """Options that do not apply to the base's family are refused with the reason, before anything is loaded."""
    objective_for(family.flow_matching, {}, config.timestep_sampling).check(config.snr_gamma)
    if config.train_token_embedding and family.denoiser != "unet":
        raise CharforgeError(
            f"--train-token-embedding trains the identifier's CLIP embedding rows; {family.label} reads the prompt "
            f"through {family.large_text_encoder}, whose rows charforge "
            "does not train yet: drop the flag (the LoRA learns the identifier)"
        )
    if config.train_text_encoder and not family.has_clip:
        raise CharforgeError(
            f"--train-text-encoder trains the CLIP text encoder; {family.label} reads the prompt through "
            f"{family.large_text_encoder} only, which stays frozen (as in the other trainers): drop the flag"
        )


def prepare_run_dir(workspace: Workspace, name: str | None, *, overwrite: bool, resume: bool, is_main: bool) -> Path:
    if resume:
        run_dir = workspace.run_dir(name or "latest")
        if not ckpt.list_checkpoints(run_dir):
            raise CharforgeError(f"{run_dir}: no checkpoint to resume from; start it again with --overwrite")
        return run_dir
    name = name or workspace.next_run_name()
    if "/" in name or name in ("", ".", "..", "latest"):
        raise CharforgeError(f"--run {name!r} is not a valid run name")
    run_dir = workspace.runs_dir / name
    if run_dir.exists():
        if not overwrite:
            raise CharforgeError(
                f"run {name!r} already exists in {workspace.runs_dir}; pass --overwrite to replace it or --resume to continue it"
            )
        if is_main:
            shutil.rmtree(run_dir)
    return run_dir


# -- 3. per-step randomness -----------------------------------------------------------------------
def step_generator(seed: int, micro_step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + micro_step * 64 + rank) % (2**63))


def batch_indices(seed: int, micro_step: int, rank: int, world: int, batch: int, n: int) -> torch.Tensor:
    """Indices of this micro-step's images: epochs are seeded permutations, processes interleave."""
    out = []
    for j in range(batch):
        position = (micro_step * world + rank) * batch + j
        epoch, offset = divmod(position, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        out.append(int(perm[offset]))
    return torch.tensor(out)


# -- 4. the loop ----------------------------------------------------------------------------------
class TrainControl:
    """Requests to a running loop from outside it: stop (checkpoint, then stop), save now, sample now.

    Ctrl-C is the terminal's way to ask for a stop (a second one aborts); the web UI's buttons set the same flags
    from another thread. Each request is honoured at the end of the current step.
    """

    def __init__(self) -> None:
        self.requested = False  # stop
        self.save_requested = False
        self.sample_requested = False

    def take_save(self) -> bool:
        asked, self.save_requested = self.save_requested, False
        return asked

    def take_sample(self) -> bool:
        asked, self.sample_requested = self.sample_requested, False
        return asked

    @contextmanager
    def installed(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread (e.g. the web UI): no handler
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


@dataclass
class _Session:
    """Everything a run set up before its first step: what the steps, checkpoints and the result read."""

    accelerator: object
    run_dir: Path
    base: BaseModel
    adapter: FamilyAdapter
    trainable: Trainable
    data: _Data
    parking: Parking
    wrapped: dict
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    resolution: int
    precision: str
    weight_dtype: torch.dtype
    start_step: int
    started_at: float

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process


def train(
    workspace: Workspace,
    config: TrainConfig,
    *,
    run_name: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    show_progress: bool = True,
    control: TrainControl | None = None,
    watch: Watch | None = None,
) -> RunResult:
    """Train ``config.method`` on the workspace's images; returns where the results are.

    ``control``: stop / save / sample requests from another thread (the web UI); each step is also reported to a
    :mod:`charforge.progress` listener. ``watch``: scores the run every ``eval_every`` steps (``--eval-every``); the
    best scored checkpoint becomes ``final/``, and a plateau (``--stop-when-plateau``) ends the run early."""
    s = _start(workspace, config, run_name=run_name, overwrite=overwrite, resume=resume, watch=watch, show=show_progress)
    step, losses, seconds = _run_steps(s, config, workspace.character, control or TrainControl(), watch, show_progress)
    # The result: final weights in the formats other tools load.
    if s.is_main:
        s.parking.unpark()  # the pipeline is whole again for what comes after the run (a promoted checkpoint's draw)
        _write_final(
            config, workspace, s.base, s.run_dir, s.trainable, s.data, watch,
            steps=step, resolution=s.resolution, started_at=s.started_at, precision=s.precision,
            weight_dtype=s.weight_dtype, seconds=seconds,
        )  # fmt: skip
    s.accelerator.wait_for_everyone()
    s.accelerator.end_training()
    return RunResult(s.run_dir, s.run_dir / "final", step, losses)


def _start(
    workspace: Workspace, config: TrainConfig, *, run_name: str | None, overwrite: bool, resume: bool, watch, show: bool
) -> _Session:
    """Inputs checked before anything expensive, then the model (what trains, in which precision), the cached data,
    the optimizer and schedule, and on ``resume`` the last checkpoint's state."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    precision = resolve_precision(config.mixed_precision)
    if config.use_8bit_adam and not torch.cuda.is_available():
        raise CharforgeError("--use-8bit-adam needs CUDA and bitsandbytes; drop the flag on CPU")
    images = workspace.training_images()
    # cpu=True without CUDA makes `accelerate launch --multi_gpu --num_processes N` run N CPU processes (gloo DDP).
    _forget_previous_precision()
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=precision,
        cpu=not torch.cuda.is_available(),
    )
    is_main = accelerator.is_main_process
    if watch is not None and accelerator.num_processes > 1:
        raise CharforgeError("--eval-every scores in one process; train without `accelerate launch`, or drop it")
    run_dir = prepare_run_dir(workspace, run_name, overwrite=overwrite, resume=resume, is_main=is_main)
    accelerator.wait_for_everyone()
    base = load_base_model(config.base, allow_unsafe_pickle=config.allow_unsafe_pickle, base_config=config.base_config)
    resolution = config.resolution or native_resolution(base.pipe)
    check_resolution(resolution, base.pipe, base.family.label)
    check_family_options(config, base.family)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        Run(run_dir).write_config(config)
    set_seed(config.seed)

    pipe = base.pipe
    adapter = adapter_for(base.family, pipe)
    trainable = setup_trainable(config, pipe, adapter, base.family, token=workspace.character.token)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)
    _place_models(pipe, adapter, trainable, accelerator.device, weight_dtype)
    if config.gradient_checkpointing:
        _enable_gradient_checkpointing(pipe, trainable)
    data = _build_data(
        config, workspace, base, adapter, trainable, images, resolution, is_main and show, autocast=accelerator.autocast
    )
    accelerator.wait_for_everyone()
    parking = Parking(
        frozen_after_caching(pipe, adapter.text_encoders, list(trainable.modules.values()),
                             embeddings_cached=data.embeddings is not None, latents_cached=config.cache_latents),
        accelerator.device,
    )  # fmt: skip
    parking.park()  # until something is drawn

    wrapped, optimizer, lr_scheduler = _prepare_optimization(config, trainable, accelerator)
    start_step, started_at = _resume(run_dir, trainable, optimizer, lr_scheduler) if resume else (0, time.time())
    if start_step >= config.max_train_steps:
        raise CharforgeError(f"{run_dir.name} already reached step {start_step}; raise --max-train-steps to continue it")
    return _Session(
        accelerator, run_dir, base, adapter, trainable, data, parking, wrapped, optimizer, lr_scheduler,
        resolution, precision, weight_dtype, start_step, started_at,
    )  # fmt: skip


class _Shown:
    """What a run shows while it trains: the progress bar, and (main process) loss.csv and the loss plot."""

    def __init__(self, s: _Session, config: TrainConfig, title: str, show: bool) -> None:
        self.loss_log = LossLog(s.run_dir, resume_step=s.start_step) if s.is_main else None
        self.title = title
        self.started = time.perf_counter()
        self.bar = tqdm(
            total=config.max_train_steps,
            initial=s.start_step,
            desc="train",
            unit="step",
            disable=not (s.is_main and show),
            dynamic_ncols=True,
        )
        self.total = config.max_train_steps

    def stepped(self, step: int, loss: float, lr: float) -> None:
        if self.loss_log:
            self.loss_log.add(step, loss, lr, self.seconds())
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        self.bar.update(1)
        progress.report("train", step, self.total)

    def plot(self, scores: list[tuple[int, float]] | None) -> None:
        if self.loss_log:
            self.loss_log.plot(self.title, scores=scores)

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def _run_steps(s: _Session, config: TrainConfig, character, control: TrainControl, watch, show: bool):
    """Optimizer steps from where the run stands to ``max_train_steps``, or to a plateau of the watch's score, with
    the checkpoints, samples and scores that fall due. Returns the last step, the losses and the seconds taken; a stop
    request checkpoints, then raises :class:`TrainingInterrupted`."""
    shown = _Shown(s, config, f"{character.token}: {config.method}, lr {config.learning_rate:g}", show)
    save = _saver(s.run_dir, config, s.trainable, s.optimizer, s.lr_scheduler, s.accelerator, s.started_at)
    losses: list[float] = []
    step = s.start_step
    for module in s.wrapped.values():
        module.train()
    with control.installed():
        while step < config.max_train_steps:
            step_loss = _optimizer_step(
                config, s.data, s.adapter, s.trainable, s.wrapped, s.optimizer, s.lr_scheduler, s.accelerator, step
            )
            step += 1
            losses.append(step_loss)
            shown.stepped(step, step_loss, s.lr_scheduler.get_last_lr()[0])
            last = step == config.max_train_steps
            stop = _any_process(s.accelerator, control.requested)
            watching = watch is not None and (step % config.eval_every == 0 or last)
            periodic = step % config.checkpointing_steps == 0 or last
            if periodic or stop or watching or control.take_save():  # a scored step is kept: it may become final/
                path = save(step)
                shown.plot(watch.curve() if watch else None)
                if stop:
                    shown.bar.close()
                    raise TrainingInterrupted(step, str(path))
            every = config.validation_steps and (step % config.validation_steps == 0 or last)
            if s.is_main and (every or control.take_sample()):
                with s.parking.back():
                    _validate(s.base.pipe, config, character, s.resolution, s.run_dir, step, s.accelerator)
            if watching and _score(s, watch, step, step_loss, shown):
                log.info("no better score in %d evaluations: stopping at step %d", config.stop_when_plateau, step)
                break
    shown.bar.close()
    return step, losses, round(shown.seconds(), 2)


def _score(s: _Session, watch: Watch, step: int, step_loss: float, shown: _Shown) -> bool:
    """The watch scores this step's weights (drawn in eval mode, with the parked parts back); True at a plateau."""
    with _evaluating(s.wrapped.values()), s.accelerator.autocast(), s.parking.back():
        plateau = watch.observe(s.base.pipe, step, s.run_dir, s.resolution)
    latest = watch.history[-1]
    shown.bar.set_postfix(loss=f"{step_loss:.4f}", score=f"{watch.score_of(latest):.3f}", eval_s=latest.seconds)
    shown.plot(watch.curve())
    return plateau


def _enable_gradient_checkpointing(pipe, trainable: Trainable) -> None:
    denoiser(pipe).enable_gradient_checkpointing()
    for name in trainable.modules:
        if name != trainable.denoiser_name:
            trainable.modules[name].gradient_checkpointing_enable()


def _resume(run_dir: Path, trainable: Trainable, optimizer, lr_scheduler) -> tuple[int, float]:
    """The step the run's last checkpoint reached, with its weights, optimizer and schedule state loaded; and when the
    run first started."""
    start_step, checkpoint_dir = ckpt.list_checkpoints(run_dir)[-1]
    trainable.load(checkpoint_dir)
    started_at = ckpt.load_training_state(checkpoint_dir, optimizer, lr_scheduler).get("started_at", time.time())
    log.info("resuming %s from step %d", run_dir.name, start_step)
    return start_step, started_at


def _optimizer_step(
    config: TrainConfig, data, adapter, trainable: Trainable, wrapped, optimizer, lr_scheduler, accelerator, step: int
) -> float:
    """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns its mean loss."""
    step_loss = 0.0
    for k in range(config.gradient_accumulation_steps):
        micro = step * config.gradient_accumulation_steps + k
        with accelerator.accumulate(*wrapped.values()):
            loss = _loss(config, data, adapter, wrapped, micro, accelerator)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                params = [p for n in wrapped for p in trainable.parameters(n)] + trainable.token_parameters()
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        step_loss += loss.detach().item() / config.gradient_accumulation_steps
    return step_loss


def _prepare_optimization(config: TrainConfig, trainable, accelerator):
    """The optimizer and learning-rate schedule, and the trained modules wrapped by accelerate (the schedule is
    scaled by the process count: accelerate steps it once per process)."""
    from diffusers.optimization import get_scheduler

    optimizer = _make_optimizer(config, trainable)
    lr_scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=config.max_train_steps * accelerator.num_processes,
    )
    names = list(trainable.modules)
    prepared = accelerator.prepare(*[trainable.modules[n] for n in names], optimizer, lr_scheduler)
    wrapped = dict(zip(names, prepared[: len(names)], strict=True))
    return wrapped, prepared[len(names)], prepared[len(names) + 1]


def _write_final(
    config: TrainConfig,
    workspace: Workspace,
    base: BaseModel,
    run_dir: Path,
    trainable,
    data,
    watch: Watch | None,
    *,
    steps: int,
    resolution: int,
    started_at: float,
    precision: str,
    weight_dtype,
    seconds: float,
) -> None:
    """The result: ``final/`` in the formats other tools load (written atomically), ``run.json``, and with a watch
    the best scored checkpoint promoted to ``final/``."""
    facts = training_facts(
        config,
        workspace,
        base,
        run_dir,
        steps=steps,
        resolution=resolution,
        started_at=started_at,
        precision=precision,
        class_image_count=len(data.class_images) if data.class_images is not None else 0,
    )
    with atomic.atomic_dir(run_dir / "final", replace=True) as tmp:
        write_result(tmp, trainable, _pipeline_to_save(base.pipe, config, trainable, weight_dtype), config, facts, base, run_dir)
    summary = {
        "base": base.source,
        "family": base.family.value,
        "method": config.method,
        "precision": precision,  # what --mixed-precision (auto) resolved to on this machine
        "recommended_guidance": recommended_guidance(base.source),  # generate / evaluate / comic draw at it by default
        "steps": steps,
        "resolution": resolution,
        "token": workspace.character.token,
        "class_word": workspace.character.class_word,
        "final": "final",
        "output_name": facts.output_name,
        "started_at": started_at,
        "seconds": seconds,
    }
    if watch is not None and watch.best is not None:
        summary["watch"] = {"best_step": watch.best.step, "stopped_at_plateau": steps < config.max_train_steps}
    Run(run_dir).write_summary(summary)
    if watch is not None and watch.best is not None and watch.best.step != steps:
        promote(workspace, Run(run_dir), watch.best.step)  # the best scored checkpoint is the result
        Run(run_dir).update_summary(promoted=watch.best.step)


class Watch(Protocol):
    """What scores a run while it trains (``charforge.evaluate.watch.TrainingWatch``; the loop knows only this)."""

    history: list  # per evaluation, a summary with its ``step`` and ``seconds``

    @property
    def best(self): ...  # the best summary so far, or None

    def observe(self, pipe, step: int, run_dir: Path, resolution: int) -> bool: ...

    def score_of(self, summary) -> float: ...

    def curve(self) -> list[tuple[int, float]]: ...


@contextmanager
def _evaluating(modules):
    modules = list(modules)
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for module in modules:
            module.train()


def _pipeline_to_save(pipe, config: TrainConfig, trainable: Trainable, weight_dtype: torch.dtype):
    """The pipeline a full model is saved from: the trained modules with the base's own frozen parts.

    Under mixed precision the frozen parts were cast to the compute dtype; casting them back would save weights
    rounded through bf16, so, as diffusers' scripts do, the frozen parts are the base's, loaded again in fp32.
    """
    if trainable.uses_lora or weight_dtype == torch.float32:
        return pipe
    fresh = load_base_model(config.base, allow_unsafe_pickle=config.allow_unsafe_pickle, base_config=config.base_config).pipe
    fresh.register_modules(**trainable.modules)
    return fresh


def _forget_previous_precision() -> None:
    """accelerate keeps one AcceleratorState per process and refuses an Accelerator of another precision after the
    first ("AcceleratorState has already been initialized"): a second run in one process (a sweep, the Python API, the
    web UI) may train in another precision. Only the precision state is dropped; the process group (PartialState),
    which `accelerate launch` set up, stays. accelerate has no public call for this; its own tests use this one."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)


def _place_models(pipe, adapter: FamilyAdapter, trainable: Trainable, device, weight_dtype) -> None:
    """Frozen parts in the compute dtype (less memory and time); trained weights stay fp32."""
    from diffusers.training_utils import cast_training_params

    def place(module: torch.nn.Module, dtype: torch.dtype) -> None:
        # Casting only when needed: diffusers warns on every dtype cast, even a no-op one.
        if module.dtype == dtype:
            module.to(device)
        else:
            module.to(device, dtype=dtype)

    place(pipe.vae, torch.float32)  # the VAE only encodes once; fp32 avoids SDXL-VAE overflow
    for name, encoder in zip(adapter.text_encoder_names, adapter.text_encoders, strict=True):
        # An encoder whose identifier rows train stays fp32 whole: its fp32 embeddings would meet bf16 LayerNorms,
        # which CPU kernels refuse even under autocast (fp32 input, bf16 weights).
        trains_whole = name in trainable.modules and not trainable.uses_lora
        place(encoder, torch.float32 if trains_whole or name in trainable.token_tables else weight_dtype)
    place(denoiser(pipe), weight_dtype if trainable.uses_lora else torch.float32)
    if trainable.uses_lora and weight_dtype != torch.float32:
        cast_training_params(list(trainable.modules.values()), dtype=torch.float32)


@dataclass
class _Data:
    images: LatentSet | PixelSet
    prompts: list[str]  # one per image
    class_images: LatentSet | None
    class_prompts: list[str]  # one per class image
    embeddings: dict[str, PromptEmbeds] | None  # cached when text encoders are frozen
    weights: list[torch.Tensor] | None  # --masked-loss: per image, (1, h, w) loss weights at latent size
    scaling: float | torch.Tensor  # (C, 1, 1) per channel for a video VAE
    shift: float | torch.Tensor
    vae_scale: int  # pixels per latent cell (the VAE's factor; twice that for FLUX.2's patches)
    objective: NoisePrediction | FlowMatching


def _build_data(config, workspace, base: BaseModel, adapter, trainable, images, resolution, show, autocast=nullcontext) -> _Data:
    """``autocast``: the run's precision context. Under bf16/fp16 the frozen parts are already cast (the VAE stays
    fp32), so the pipeline draws class images in mixed dtypes, which only autocast reconciles."""
    character = workspace.character
    fill = lambda t: config.prompt(t, character.token, character.class_word)  # noqa: E731
    prompts = training_prompts(config, workspace, images)
    vae = base.pipe.vae
    pixels = load_pixels(images, resolution, step=resolution_multiple(base.pipe))
    if config.train_batch_size > 1 and not same_size(pixels):
        raise CharforgeError(
            "the images have several aspect-ratio buckets; use --train-batch-size 1 with "
            f"--gradient-accumulation-steps {config.train_batch_size} for the same effective batch"
        )
    image_set = encode_latents(vae, pixels) if config.cache_latents else PixelSet(pixels, vae)
    class_set, class_prompts = None, []
    if config.prior_preservation:
        with autocast():
            class_images = ensure_class_images(
                base.pipe,
                workspace.class_images_dir,
                base_source=base.source,
                prompts=[fill(t) for t in config.class_prompt or ["a picture of a {class_word}"]],
                count=config.num_class_images,
                resolution=resolution,
                steps=config.class_inference_steps,
                seed=config.seed,
                show_progress=show,
            )
        paths, class_prompts = [p for p, _ in class_images], [prompt for _, prompt in class_images]
        class_set = encode_latents(vae, load_pixels(paths, resolution, step=resolution_multiple(base.pipe)))
    embeddings = None
    if config.cache_text_embeddings and not trainable.trains_text_encoder:
        embeddings = encode_prompts(adapter, prompts + class_prompts)
    shift, scaling = vae_latents.normalisation(vae)
    return _Data(
        images=image_set,
        prompts=prompts,
        class_images=class_set,
        class_prompts=class_prompts,
        embeddings=embeddings,
        weights=loss_weights(
            images, resolution, resolution_multiple(base.pipe), vae_latents.cell_size(base.pipe), config.unmasked_weight
        )
        if config.masked_loss
        else None,
        scaling=scaling,
        shift=shift,
        vae_scale=vae_latents.cell_size(base.pipe),
        objective=objective_for(base.family.flow_matching, base.scheduler_config, config.timestep_sampling),
    )


def _make_optimizer(config: TrainConfig, trainable: Trainable) -> torch.optim.Optimizer:
    groups = [{"params": trainable.parameters(trainable.denoiser_name), "lr": config.learning_rate}]
    for name in trainable.modules:
        if name != trainable.denoiser_name:
            groups.append({"params": trainable.parameters(name), "lr": config.text_encoder_lr or config.learning_rate})
    if trainable.token_tables:
        # No weight decay: it would shrink every other word's embedding, whose gradients are masked to zero.
        lr = config.text_encoder_lr or config.learning_rate
        groups.append({"params": trainable.token_parameters(), "lr": lr, "weight_decay": 0.0})
    kwargs = dict(betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.adam_weight_decay, eps=config.adam_epsilon)
    if config.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise CharforgeError("--use-8bit-adam needs bitsandbytes: pip install bitsandbytes") from exc
        return bnb.optim.AdamW8bit(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


def _loss(config: TrainConfig, data: _Data, adapter: FamilyAdapter, wrapped, micro: int, accelerator) -> torch.Tensor:
    """Denoising loss of one micro-batch (instance images, then class images under prior preservation)."""
    rank, world, bs = accelerator.process_index, accelerator.num_processes, config.train_batch_size
    gen = step_generator(config.seed, micro, rank)
    index = batch_indices(config.seed, micro, rank, world, bs, len(data.prompts))
    latents = data.images.sample(index, gen, data.scaling, data.shift)
    prompts = [data.prompts[int(i)] for i in index]
    if data.class_images is not None:
        class_index = batch_indices(config.seed + 1, micro, rank, world, bs, len(data.class_images))
        latents = torch.cat([latents, data.class_images.sample(class_index, gen, data.scaling, data.shift)])
        prompts += [data.class_prompts[int(i)] for i in class_index]
    objective = data.objective
    noise = torch.randn(latents.shape, generator=gen)
    if config.noise_offset:
        # Offset noise (Guttenberg 2023) lets the model learn very dark / bright images.
        noise += config.noise_offset * torch.randn((latents.shape[0], latents.shape[1], 1, 1), generator=gen)
    batch = objective.noised(latents, noise, gen)
    if data.embeddings is not None:
        embeds = PromptEmbeds.cat([data.embeddings[p] for p in prompts])
    else:
        encoders = [wrapped.get(n, e) for n, e in zip(adapter.text_encoder_names, adapter.text_encoders, strict=True)]
        embeds = adapter.encode(adapter.tokenize(prompts), encoders)
    device = accelerator.device
    net = wrapped[adapter.denoiser_name]
    dtype = next(p for p in accelerator.unwrap_model(net).parameters()).dtype
    embeds = embeds.to(device, dtype)
    pixel_size = (latents.shape[-2] * data.vae_scale, latents.shape[-1] * data.vae_scale)  # (H, W)
    pred = adapter.predict(net, batch.noisy.to(device, dtype), batch.timesteps.to(device), embeds, pixel_size).float()
    per_element = F.mse_loss(pred, batch.target.to(device), reduction="none")
    if data.weights is not None:  # masked loss: the mean over each instance image's subject; class images whole
        weights = torch.ones_like(per_element[:, :1])
        weights[:bs] = torch.stack([data.weights[int(i)] for i in index]).to(device)
        per_sample = (per_element * weights).mean(dim=(1, 2, 3)) / weights.mean(dim=(1, 2, 3))
    else:
        per_sample = per_element.mean(dim=(1, 2, 3))
    if config.snr_gamma:
        per_sample = per_sample * objective.min_snr_weight(batch.timesteps, config.snr_gamma).to(device)
    if data.class_images is None:
        return per_sample.mean()
    return per_sample[:bs].mean() + config.prior_loss_weight * per_sample[bs:].mean()


def _any_process(accelerator, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(value, reduction="sum").item() > 0)


def _saver(run_dir: Path, config: TrainConfig, trainable: Trainable, optimizer, lr_scheduler, accelerator, started_at: float):
    def save(step: int) -> Path:
        path = run_dir / "checkpoints" / ckpt.step_dir_name(step)
        if accelerator.is_main_process:
            path = ckpt.save_checkpoint(
                run_dir,
                step,
                write_weights=trainable.save,
                optimizer=optimizer,
                lr_scheduler=lr_scheduler,
                extra={"seed": config.seed, "method": config.method, "started_at": started_at},
                keep=config.checkpoints_total_limit,
            )
        accelerator.wait_for_everyone()
        return path

    return save


def _validate(pipe, config: TrainConfig, character, resolution: int, run_dir: Path, step: int, accelerator) -> None:
    prompts = [config.prompt(p, character.token, character.class_word) for p in config.validation_prompts]
    net = denoiser(pipe)
    net.eval()
    with accelerator.autocast():
        validation_grid(
            pipe,
            prompts,
            config.validation_seeds,
            resolution=resolution,
            steps=config.validation_inference_steps,
            guidance=recommended_guidance(config.base),
            path=run_dir / "samples" / f"{ckpt.step_dir_name(step)}.png",
        )
    net.train()
