"""The quick start's main job on the embedded default, with no download.

Until the mini world's pretrained model ships, the embedded default is a *tiny model built on the
spot* (SD1.x architecture, random weights): the run exercises every real code path — prepare,
DreamBooth-LoRA training with checkpoints, the LoRA files, generation with metadata — but its images
are noise, and the demo says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from . import api
from .errors import CharforgeError
from .models.family import ModelFamily
from .models.tiny import save_tiny_model


def draw_demo_character(seed: int, size: int = 256) -> Image.Image:
    """A simple unicorn-girl-like figure (pink hair, blue onesie, rainbow horn) in a few poses."""
    scale = 4  # supersampled for clean edges
    s = size * scale
    image = Image.new("RGB", (s, s), "white")
    d = ImageDraw.Draw(image)
    dx = (seed % 3 - 1) * s // 10
    cx, head_y, head_r = s // 2 + dx, s * 3 // 10, s // 9
    d.rounded_rectangle([cx - s // 8, head_y + head_r, cx + s // 8, s * 8 // 10], radius=s // 20, fill=(70, 120, 220))
    arm_up = seed % 2 == 1
    for side in (-1, 1):
        x0 = cx + side * s // 8
        y1 = head_y if arm_up else s * 6 // 10
        d.line([x0, head_y + head_r * 2, x0 + side * s // 8, y1], fill=(70, 120, 220), width=s // 30)
    d.ellipse([cx - head_r * 1.3, head_y - head_r * 1.3, cx + head_r * 1.3, head_y + head_r * 0.9], fill=(240, 110, 180))
    d.ellipse([cx - head_r, head_y - head_r, cx + head_r, head_y + head_r], fill=(250, 220, 200))
    for ex in (-1, 1):
        d.ellipse(
            [cx + ex * head_r // 2 - s // 120, head_y - s // 120, cx + ex * head_r // 2 + s // 120, head_y + s // 120],
            fill="black",
        )
    colours = [(230, 60, 60), (240, 160, 40), (240, 230, 60), (60, 190, 90), (60, 120, 230)]
    for i, colour in enumerate(colours):
        w = head_r // 3 * (5 - i) // 5 + 2
        y = head_y - head_r - i * head_r // 4
        d.polygon([(cx - w, y), (cx + w, y), (cx, y - head_r // 4)], fill=colour)
    return image.resize((size, size), Image.Resampling.LANCZOS)


@dataclass
class DemoResult:
    workspace: Path
    run_dir: Path
    images: list[Path]
    contact_sheet: Path
    first_loss: float
    last_loss: float


def run_demo(
    folder: str | Path = "charforge-demo", *, steps: int = 60, overwrite: bool = False, show_progress: bool = True
) -> DemoResult:
    folder = Path(folder)
    marker = folder / ".charforge-demo"
    if folder.exists() and any(folder.iterdir()):
        # A folder the demo made itself is replaced, so the quick start can be run again; anything else
        # is the user's and needs --overwrite.
        if not (marker.exists() or overwrite):
            raise CharforgeError(f"{folder} exists and is not a charforge demo; pass --overwrite or choose another folder")
        import shutil

        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by `charforge demo`; replaced when the demo runs again\n", encoding="utf-8")
    model = save_tiny_model(folder / "tiny-sd1-model", ModelFamily.SD1)
    drawings = folder / "drawings"
    drawings.mkdir()
    for i in range(6):
        draw_demo_character(i).save(drawings / f"unicorn-girl-{i}.png")
    ws = api.init(folder / "unicorn-girl", token="UnicornGirl", class_word="girl")
    api.prepare(ws, [drawings])
    result = api.train(
        ws,
        base=str(model),
        resolution=64,
        max_train_steps=steps,
        checkpointing_steps=max(1, steps // 3),
        validation_steps=max(1, steps // 3),
        validation_inference_steps=4,
        learning_rate=1e-3,
        show_progress=show_progress,
    )
    gen = api.generate(
        ws,
        ["a picture of UnicornGirl girl waving", "a picture of UnicornGirl girl sad"],
        num_images=2,
        steps=8,
        show_progress=show_progress,
    )
    window = max(1, len(result.losses) // 5)
    first = sum(result.losses[:window]) / window
    last = sum(result.losses[-window:]) / window
    return DemoResult(ws.root, result.run_dir, gen.images, gen.contact_sheet, first, last)
