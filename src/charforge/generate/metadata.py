"""A1111-style generation parameters in a PNG ``parameters`` text chunk.

Other tools (A1111's PNG Info, ComfyUI, civitai) read this format, so charforge writes it and can
read it back. The format: the prompt, an optional ``Negative prompt: ...`` line, then one line of
``Key: value`` pairs separated by ", " (values containing commas are double-quoted).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, PngImagePlugin

from .. import atomic


@dataclass
class GenerationParams:
    prompt: str
    negative_prompt: str = ""
    steps: int = 30
    sampler: str = "DPM++ 2M"
    cfg_scale: float = 7.5
    seed: int = 0
    width: int = 512
    height: int = 512
    model: str = ""
    loras: list[tuple[str, float]] = field(default_factory=list)

    def to_text(self) -> str:
        fields = {
            "Steps": str(self.steps),
            "Sampler": self.sampler,
            "CFG scale": _num(self.cfg_scale),
            "Seed": str(self.seed),
            "Size": f"{self.width}x{self.height}",
            "Model": self.model,
        }
        if self.loras:
            fields["Lora weights"] = ", ".join(f"{name}: {_num(w)}" for name, w in self.loras)
        line = ", ".join(f"{k}: {_quote(v)}" for k, v in fields.items() if v != "")
        neg = f"\nNegative prompt: {self.negative_prompt}" if self.negative_prompt else ""
        return f"{self.prompt}{neg}\n{line}"

    @classmethod
    def from_text(cls, text: str) -> GenerationParams:
        lines = text.strip().split("\n")
        fields = _parse_fields(lines[-1])
        body = lines[:-1]
        negative = ""
        for i, line in enumerate(body):
            if line.startswith("Negative prompt: "):
                negative = "\n".join([line[len("Negative prompt: ") :], *body[i + 1 :]])
                body = body[:i]
                break
        width, height = (int(v) for v in fields.get("Size", "512x512").split("x"))
        loras = []
        if fields.get("Lora weights"):
            for item in fields["Lora weights"].split(", "):
                name, weight = item.rsplit(": ", 1)
                loras.append((name, float(weight)))
        return cls(
            prompt="\n".join(body),
            negative_prompt=negative,
            steps=int(fields.get("Steps", 0)),
            sampler=fields.get("Sampler", ""),
            cfg_scale=float(fields.get("CFG scale", 0)),
            seed=int(fields.get("Seed", 0)),
            width=width,
            height=height,
            model=fields.get("Model", ""),
            loras=loras,
        )


def _num(x: float) -> str:
    return f"{x:g}"


def _quote(value: str) -> str:
    return json.dumps(value) if ("," in value or ":" in value or '"' in value) else value


_FIELD = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^"\\])*"|[^,]*)(?:,|$)')


def _parse_fields(line: str) -> dict[str, str]:
    out = {}
    for key, value in _FIELD.findall(line):
        out[key.strip()] = json.loads(value) if value.startswith('"') else value.strip()
    return out


def save_png(image: Image.Image, path: Path, params: GenerationParams) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", params.to_text())
    with atomic.atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return path


def read_png_params(path: str | Path) -> GenerationParams:
    with Image.open(path) as image:
        text = image.info.get("parameters")
    if text is None:
        raise ValueError(f"{path}: no 'parameters' text chunk")
    return GenerationParams.from_text(text)
