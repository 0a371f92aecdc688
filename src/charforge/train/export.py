"""A run's result folder: the weights in every format other programs load, their metadata and the model card.

Training writes it after its last step and :func:`promote` writes it again from a chosen checkpoint, both through
:func:`write_result`, so a promoted result is the same kind of folder as a trained one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from .. import atomic
from ..config import TrainConfig
from ..models.kohya import TrainingFacts
from ..models.loading import BaseModel, model_defaults, recommended_guidance, write_model_defaults
from ..run import Run
from ..workspace import Workspace
from . import checkpoint as ckpt
from .methods import Trainable
from .model_card import base_license, write_model_card
from .prompts import instance_prompt, training_prompts

_SAVE_DTYPE = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def output_name(token: str, run_name: str) -> str:
    """``TOKEN-RUN``: the kohya file's name, so files of two runs do not collide in one LoRA folder."""
    return f"{token}-{run_name}"


def training_facts(
    config: TrainConfig,
    workspace: Workspace,
    base: BaseModel,
    run_dir: Path,
    *,
    steps: int,
    resolution: int,
    started_at: float,
    precision: str,
    class_image_count: int,
) -> TrainingFacts:
    character = workspace.character
    images = workspace.training_images()
    return TrainingFacts(
        output_name=output_name(character.token, run_dir.name),
        token=character.token,
        class_word=character.class_word,
        trigger_prompt=instance_prompt(config, workspace),
        base_source=base.source,
        base_name=base.name,
        base_hash=base.hash,  # A1111's "Model hash" of the file it would load, as the PNG parameters carry it
        method=config.method,
        resolution=resolution,
        steps=steps,
        started_at=started_at,
        finished_at=time.time(),
        precision=precision,
        prediction_type=str(base.pipe.scheduler.config.get("prediction_type", "epsilon")),
        dataset_dir=workspace.images_dir.name,
        image_count=len(images),
        class_image_count=class_image_count,
        captions=training_prompts(config, workspace, images, warn=False),
        config=config.model_dump(mode="json"),
    )


def write_result(
    folder: Path, trainable: Trainable, pipe, config: TrainConfig, facts: TrainingFacts, base: BaseModel, run_dir: Path
) -> None:
    """Fill ``folder`` (a temporary one, renamed into place by the caller) with the result of ``trainable``."""
    trainable.save(
        folder,
        pipe=pipe,
        facts=facts,
        kohya=config.save_kohya,
        single_file=config.save_single_file,
        dtype=_SAVE_DTYPE.get(config.save_dtype or ""),
    )
    if not trainable.uses_lora:  # a full model is a base of its own: it keeps how its base is drawn
        drawn_as = {**model_defaults(base.source), "guidance": recommended_guidance(base.source)}
        write_model_defaults(folder, {**drawn_as, "name": facts.output_name})
    samples = run_dir / "samples" / f"{ckpt.step_dir_name(facts.steps)}.png"
    write_model_card(folder, facts, base.family, samples=samples, license=config.license or base_license(base.source))


def promote(workspace: Workspace, run: Run, step: int) -> Path:
    """Make checkpoint ``step`` the run's ``final/`` result, written as training writes it; the old ``final/`` is
    kept as ``final-before-promote/``."""
    from ..models.adapters import adapter_for
    from ..models.loading import load_base_model, native_resolution
    from .methods import setup_trainable

    checkpoint = run.checkpoint(step)
    config, summary = run.config(), run.summary()
    base = load_base_model(config.base, allow_unsafe_pickle=config.allow_unsafe_pickle, base_config=config.base_config)
    adapter = adapter_for(base.family, base.pipe)
    trainable = setup_trainable(config, base.pipe, adapter, base.family, token=workspace.character.token)
    trainable.load(checkpoint)
    facts = training_facts(
        config,
        workspace,
        base,
        run.folder,
        steps=step,
        resolution=summary.get("resolution") or config.resolution or native_resolution(base.pipe),
        started_at=summary.get("started_at") or ckpt.read_training_state(checkpoint).get("started_at", 0.0),
        precision=summary.get("precision", config.mixed_precision),
        class_image_count=config.num_class_images if config.prior_preservation else 0,
    )
    staged = run.folder / ".final-promoted"
    with atomic.atomic_dir(staged, replace=True) as tmp:
        write_result(tmp, trainable, base.pipe, config, facts, base, run.folder)
    if run.final_dir.exists():
        previous = run.folder / "final-before-promote"
        if previous.exists():
            shutil.rmtree(previous)
        run.final_dir.rename(previous)
    staged.rename(run.final_dir)
    run.update_summary(promoted_from_step=step, final="final", output_name=facts.output_name)
    return run.final_dir
