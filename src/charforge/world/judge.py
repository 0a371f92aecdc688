"""The judge: a small CNN that reads a mini-world picture's attributes back.

One shared trunk, one classification head per attribute (hair colour and style, outfit colour and
type, accessory, skin, pose, expression, background). It is trained on fresh renders with blur,
noise and small colour shifts, so that it also reads the softer pictures a diffusion model makes.
Expression is only learned and asked where the face is visible.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import nn

from .. import atomic
from ..errors import CharforgeError
from . import JUDGE_FILE, REBUILD_HINT
from .attributes import ALL_VALUES, Character, Scene, random_character, random_scene
from .render import render

log = logging.getLogger(__name__)
SIZE = 64
HEADS = tuple(ALL_VALUES)  # attribute names, in a fixed order


class JudgeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.trunk = nn.Sequential(block(3, 16), block(16, 48), block(48, 96), block(96, 128), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(128 * 4 * 4, 256), nn.ReLU(inplace=True), nn.Dropout(0.2))
        self.heads = nn.ModuleDict({name.replace(" ", "_"): nn.Linear(256, len(ALL_VALUES[name])) for name in HEADS})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.fc(self.trunk(x))
        return {name: self.heads[name.replace(" ", "_")](h) for name in HEADS}


def _augment(image: Image.Image, rng: random.Random) -> Image.Image:
    if rng.random() < 0.6:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.0)))
    arr = np.asarray(image).astype(np.float32)
    arr = arr * rng.uniform(0.92, 1.08) + rng.uniform(-10, 10)
    if rng.random() < 0.6:
        arr = arr + np.random.default_rng(rng.randrange(2**31)).normal(0, rng.uniform(2, 10), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def to_batch(images: list[Image.Image]) -> torch.Tensor:
    arr = np.stack([np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _labels(character: Character, scene: Scene) -> dict[str, int]:
    values = {**character.to_dict(), **scene.to_dict()}
    labels = {name: ALL_VALUES[name].index(values[name]) for name in HEADS}
    if not scene.face_visible:
        labels["expression"] = -100  # ignored by the loss
    return labels


def render_labelled(count: int, seed: int, augment: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    rng = random.Random(seed)
    images, labels = [], {name: [] for name in HEADS}
    for _ in range(count):
        character, scene = random_character(rng), random_scene(rng)
        image = render(character, scene, SIZE, seed=rng.randrange(2**31))
        images.append(_augment(image, rng) if augment else image)
        for name, value in _labels(character, scene).items():
            labels[name].append(value)
    return to_batch(images), {name: torch.tensor(v) for name, v in labels.items()}


def accuracy(net: JudgeNet, x: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    net.eval()
    with torch.no_grad():
        logits = {name: [] for name in HEADS}
        for i in range(0, len(x), 256):
            for name, out in net(x[i : i + 256]).items():
                logits[name].append(out)
    result = {}
    for name in HEADS:
        pred = torch.cat(logits[name]).argmax(1)
        valid = labels[name] != -100
        result[name] = float((pred[valid] == labels[name][valid]).float().mean())
    return result


def train_judge(steps: int = 2000, batch: int = 48, pool: int = 20000, seed: int = 0, progress=None) -> tuple[JudgeNet, dict]:
    """Train on a pool of augmented renders (re-augmented each pass); test on fresh clean and augmented renders."""
    torch.manual_seed(seed)
    net = JudgeNet()
    x, labels = render_labelled(pool, seed, augment=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    iterator = range(steps) if progress is None else progress(range(steps), "judge")
    for step in iterator:
        net.train()
        index = torch.randint(0, pool, (batch,), generator=gen)
        xb = x[index]
        # cheap extra augmentation: a shift of up to 3 px
        dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=gen))
        xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
        out = net(xb)
        loss = sum(F.cross_entropy(out[name], labels[name][index], ignore_index=-100) for name in HEADS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 200 == 0:
            log.info("judge step %d loss %.4f", step, float(loss))
    test_clean = render_labelled(2000, seed + 10_000, augment=False)
    test_aug = render_labelled(2000, seed + 20_000, augment=True)
    report = {"clean": accuracy(net, *test_clean), "augmented": accuracy(net, *test_aug), "steps": steps, "pool": pool}
    return net, report


def build_judge(out: Path, work: Path) -> Path:
    from safetensors.torch import save_file

    from .build import _progress

    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # it shares the machine with the base model's build
    net, report = train_judge(progress=_progress)
    log.info("judge accuracy on fresh renders: %s", json.dumps(report))
    with atomic.atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata={"report": json.dumps(report)})
    return out


# -- reading pictures ----------------------------------------------------------------------------------
@dataclass
class Reading:
    values: dict[str, str]
    confidence: dict[str, float]


class Judge:
    def __init__(self, net: JudgeNet, report: dict) -> None:
        self.net = net.eval()
        self.report = report

    @classmethod
    def load(cls, path: Path = JUDGE_FILE) -> Judge:
        from safetensors import safe_open
        from safetensors.torch import load_file

        if not path.is_file():
            raise CharforgeError(f"{path}: the mini world's judge weights are missing; {REBUILD_HINT}")
        try:
            with safe_open(str(path), "pt") as f:
                report = json.loads((f.metadata() or {}).get("report", "{}"))
            state = load_file(str(path))
            net = JudgeNet()
            net.load_state_dict(state)
        except Exception as exc:
            raise CharforgeError(f"{path}: the judge weights are unreadable ({type(exc).__name__}); {REBUILD_HINT}") from None
        return cls(net, report)

    @torch.no_grad()
    def read(self, images: list[Image.Image]) -> list[Reading]:
        readings: list[Reading] = []
        for i in range(0, len(images), 256):
            out = self.net(to_batch(images[i : i + 256]))
            probs = {name: out[name].softmax(1) for name in HEADS}
            for j in range(len(images[i : i + 256])):
                values, conf = {}, {}
                for name in HEADS:
                    p, k = probs[name][j].max(0)
                    values[name] = ALL_VALUES[name][int(k)]
                    conf[name] = float(p)
                readings.append(Reading(values, conf))
        return readings
