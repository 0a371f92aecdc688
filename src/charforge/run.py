"""One training run's folder, and the one place that reads it: its config, its summary, its points.

A run folder holds ``config.yaml`` (the resolved :class:`~charforge.config.TrainConfig`, written when training
starts or resumes), ``run.json`` (the summary the last step writes), ``checkpoints/step-N/`` and ``final/``.
Everything that needs one of those asks the :class:`Run`, so the layout is known here only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import atomic
from .config import TrainConfig, build_train_config, dump_config
from .errors import CharforgeError

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "run.json"
FINAL_DIR = "final"
STATE_FILE = "training_state.json"  # in each checkpoint: what resume needs besides the weights
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


@dataclass(frozen=True)
class Run:
    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def config_file(self) -> Path:
        return self.folder / CONFIG_FILE

    @property
    def final_dir(self) -> Path:
        return self.folder / FINAL_DIR

    def config(self) -> TrainConfig:
        if not self.config_file.is_file():
            raise CharforgeError(f"{self.folder}: no {CONFIG_FILE}; is this a charforge run?")
        return build_train_config(config_file=self.config_file)

    def summary(self) -> dict[str, Any]:
        """``run.json`` (empty until the run has finished once)."""
        path = self.folder / SUMMARY_FILE
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise CharforgeError(f"{path}: not valid JSON ({exc})") from exc

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic.write_text(self.folder / SUMMARY_FILE, json.dumps(summary, indent=1))

    def update_summary(self, **changes: Any) -> dict[str, Any]:
        summary = {**self.summary(), **changes}
        self.write_summary(summary)
        return summary

    def write_config(self, config: TrainConfig) -> None:
        """Store the resolved config (as training starts or resumes: see :meth:`trained_at`)."""
        atomic.write_text(self.config_file, dump_config(config))

    def trained_at(self) -> float:
        """When training last started or resumed: ``config.yaml`` is written then and at no other time, so
        evaluating, rating or promoting a run leaves this alone."""
        return self.config_file.stat().st_mtime if self.config_file.is_file() else self.folder.stat().st_mtime

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, by step (a folder without its state file is not one)."""
        folder = self.folder / "checkpoints"
        if not folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_FILE).is_file()]
        return sorted(found)

    def checkpoint(self, step: int) -> Path:
        found = dict(self.checkpoints())
        if step not in found:
            raise CharforgeError(f"run {self.name} has no checkpoint at step {step} (has: {sorted(found) or 'none'})")
        return found[step]

    def samples(self) -> list[Path]:
        """The validation grids drawn while training (``samples/step-N.png``), oldest first."""
        folder = self.folder / "samples"
        found = [p for p in folder.glob("step-*.png") if _STEP_DIR.match(p.stem)] if folder.is_dir() else []
        return sorted(found)

    def final(self) -> Path:
        if not self.final_dir.is_dir():
            raise CharforgeError(f"run {self.name} has no final result yet; pick --checkpoint STEP or finish it with --resume")
        return self.final_dir
