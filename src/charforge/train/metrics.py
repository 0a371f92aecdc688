"""The loss log of a run: ``loss.csv`` (appended as training goes) and ``loss.png``."""

from __future__ import annotations

import csv
from pathlib import Path

from .. import atomic

FIELDS = ("step", "loss", "lr", "seconds")


class LossLog:
    def __init__(self, run_dir: Path, *, resume_step: int = 0) -> None:
        self.csv_path = run_dir / "loss.csv"
        self.png_path = run_dir / "loss.png"
        self.rows: list[dict[str, float]] = []
        if resume_step and self.csv_path.exists():
            with self.csv_path.open(encoding="utf-8") as f:
                # Rows after the checkpoint were trained again after the resume: drop them.
                self.rows = [
                    {k: float(v) for k, v in r.items()} for r in csv.DictReader(f) if int(float(r["step"])) <= resume_step
                ]
        self._rewrite()

    def add(self, step: int, loss: float, lr: float, seconds: float) -> None:
        row = {"step": step, "loss": loss, "lr": lr, "seconds": seconds}
        self.rows.append(row)
        with self.csv_path.open("a", encoding="utf-8", newline="") as f:
            csv.DictWriter(f, FIELDS).writerow(row)

    def _rewrite(self) -> None:
        with atomic.atomic_path(self.csv_path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)

    def plot(self, title: str = "training loss", scores: list[tuple[int, float]] | None = None) -> Path | None:
        """The loss curve, with the run's scores over steps on a second axis when it is scored as it trains."""
        if not self.rows:
            return None
        import numpy as np

        from ..plots import pyplot, save_figure

        plt = pyplot()

        steps = np.array([r["step"] for r in self.rows])
        losses = np.array([r["loss"] for r in self.rows])
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
        ax.plot(steps, losses, lw=0.8, alpha=0.4, label="loss")
        smooth_steps, smooth, window = moving_average(steps, losses)
        if window > 1:
            ax.plot(smooth_steps, smooth, lw=1.6, label=f"moving average ({window})")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.legend(loc="upper left")
        if scores:
            right = ax.twinx()
            right.plot([s for s, _ in scores], [v for _, v in scores], "o-", color="tab:green", lw=1.4, label="score")
            right.set_ylabel("score (--eval-every)")
            right.legend(loc="upper right")
        fig.tight_layout()
        save_figure(fig, self.png_path)
        return self.png_path


def read_loss(run_dir: Path) -> tuple[list[float], list[float]]:
    """Steps and losses from a run's ``loss.csv`` (empty lists when there is none)."""
    path = run_dir / "loss.csv"
    if not path.is_file():
        return [], []
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [float(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def moving_average(steps, losses, parts: int = 20):
    """A moving average over ``len/parts`` steps (diffusion losses are noisy: the trend is what matters)."""
    import numpy as np

    steps, losses = np.asarray(steps, dtype=float), np.asarray(losses, dtype=float)
    window = max(1, len(losses) // parts)
    if window == 1:
        return steps, losses, 1
    return steps[window - 1 :], np.convolve(losses, np.ones(window) / window, mode="valid"), window
