"""Checkpoints: trained weights plus everything resume needs, written atomically.

Optimizer state is stored as safetensors plus JSON rather than ``torch.save`` so that resuming
never unpickles anything. A checkpoint folder appears only once complete (temp folder + rename), so a
crash or a full disk leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import atomic
from ..errors import CharforgeError
from ..run import STATE_FILE, Run, step_dir_name  # noqa: F401 (step_dir_name: named here for the loop)

OPTIMIZER_FILE = "optimizer.safetensors"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    return Run(run_dir).checkpoints()


def optimizer_to_safetensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into flat tensors and a JSON-able rest."""
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            key = f"{index}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().cpu().contiguous()
            else:
                scalars[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_safetensors(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(rest["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def save_checkpoint(
    run_dir: Path, step: int, *, write_weights, optimizer, lr_scheduler, extra: dict[str, Any], keep: int | None = None
) -> Path:
    """Write ``checkpoints/step-NNNNNN``; ``write_weights(folder)`` saves the trained weights into it."""
    target = run_dir / "checkpoints" / step_dir_name(step)
    with atomic.atomic_dir(target, replace=True) as tmp:
        write_weights(tmp)
        tensors, rest = optimizer_to_safetensors(optimizer.state_dict())
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        state = {"step": step, "optimizer": rest, "lr_scheduler": _jsonable(lr_scheduler.state_dict()), **extra}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    if keep:
        for _, old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def read_training_state(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's JSON state: ``step``, the seed and method, when the run started, the schedule."""
    try:
        return json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CharforgeError(f"{checkpoint}: checkpoint is unreadable ({exc}); resume from an earlier one") from exc


def load_training_state(checkpoint: Path, optimizer, lr_scheduler) -> dict[str, Any]:
    """Restore optimizer and scheduler from ``checkpoint``; returns its JSON state (with ``step``)."""
    state = read_training_state(checkpoint)
    try:
        tensors = load_file(str(checkpoint / OPTIMIZER_FILE))
    except (OSError, ValueError) as exc:
        raise CharforgeError(f"{checkpoint}: checkpoint is unreadable ({exc}); resume from an earlier one") from exc
    optimizer.load_state_dict(optimizer_from_safetensors(tensors, state["optimizer"]))
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    return state


def _jsonable(state: dict[str, Any]) -> dict[str, Any]:
    # LambdaLR keeps None for plain-function lambdas; everything else is numbers and lists.
    return json.loads(json.dumps(state, default=lambda o: o.tolist() if torch.is_tensor(o) else None))
