"""What ``charforge evaluate`` takes: one strict model for the API, the CLI's flags and ``--config``.

Kept apart from ``evaluate.py`` so the command line can build its flags without loading the scoring models' code.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..options import CommaInts, Options, cli

DEFAULT = "default"  # an encoder option left at its default: skipped with a note if it cannot be loaded


class EvalOptions(Options):
    """How ``charforge evaluate`` draws and scores a run; the CLI's flags are these fields."""

    prompts: Path | None = Field(None, description="Prompt set YAML (default: the built-in set; see --example-prompts).")
    checkpoints: CommaInts | None = Field(
        None, description="Only these steps, e.g. 600,1200 (default: all).", json_schema_extra=cli(text=True)
    )
    clip: str | None = Field(DEFAULT, description="CLIP model (hub id or folder) for CLIP-I/CLIP-T; 'none' to skip.")
    dino: str | None = Field(DEFAULT, description="DINO/DINOv2 model (hub id or folder) for the DINO score; 'none' to skip.")
    # 25 DPM++ 2M steps rank checkpoints as 50 do (benchmarks/results/cheap-evaluation.md: Spearman 0.98-1.00, the same
    # pick on both runs measured, while 50 steps on four other seeds agreed less: 0.98 and 0.79)
    steps: int = Field(25, ge=1, description="Inference steps per picture (25 rank checkpoints as 50 do; measured).")
    guidance: float | None = Field(
        None, description="Classifier-free guidance scale (default: the prompt set's, else the model's recommended)."
    )
    sampler: str = Field("default", description="Sampler (default: the model's own, as generate).")
    base: str | None = Field(None, description="Evaluate on another base model of the same family.")
    batch_size: int = Field(
        16, ge=1, description="Pictures per pass of the CLIP / DINO encoders.", json_schema_extra=cli("--encoder-batch-size")
    )
    draw_batch_size: int = Field(
        1,
        ge=1,
        description="Pictures drawn per pass of the model (faster, more memory; cached pictures are reused).",
        json_schema_extra=cli("--batch-size"),
    )
    # Same pick as the full evaluation on both runs measured, with half the pictures (4 seeds): the benchmark above.
    halving: bool = Field(
        True,
        description="Successive halving: every checkpoint on the first seed, the better half on two, ..., the leaders"
        " on all seeds; the best is picked among those (half the pictures with 4 seeds; --no-halving: all of them).",
    )
