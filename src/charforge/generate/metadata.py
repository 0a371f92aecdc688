"""A1111-style generation parameters ("infotext") in a PNG ``parameters`` text chunk.

Other tools (A1111's PNG Info and "paste parameters", Forge, civitai, PNG-info readers) read this format, so
charforge writes it the way A1111 does and reads it back. The format: the prompt (LoRAs as ``<lora:NAME:WEIGHT>``
in it), an optional ``Negative prompt: ...`` line, then one line of ``Key: value`` pairs separated by ", " (values
holding a comma, colon or line break JSON-quoted). The LoRA and model hashes let sites link the resources.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, PngImagePlugin

from .. import __version__, atomic
from .schedulers import a1111_sampler, label_from_a1111


@dataclass
class GenerationParams:
    prompt: str  # without the ``<lora:...>`` tags, which ``to_text`` adds from ``loras``
    negative_prompt: str = ""
    steps: int = 30
    sampler: str = "DPM++ 2M"  # our label (``schedulers.SAMPLERS``), e.g. "DPM++ 2M Karras"
    cfg_scale: float = 7.5
    seed: int = 0
    width: int = 512
    height: int = 512
    model: str = ""
    model_hash: str = ""  # A1111's: the first 10 hex digits of the checkpoint file's sha256
    loras: list[tuple[str, float]] = field(default_factory=list)  # (name as A1111's <lora:NAME:w> calls it, weight)
    lora_hashes: dict[str, str] = field(default_factory=dict)  # name -> A1111's 12-digit hash of the file
    version: str = f"charforge {__version__}"
    extra: dict[str, str] = field(default_factory=dict)  # what else drew it, by A1111's names ("Denoising strength", ...)

    def to_text(self) -> str:
        """A1111's infotext: LoRAs as ``<lora:NAME:WEIGHT>`` in the prompt, so "paste parameters" restores them."""
        sampler, schedule = a1111_sampler(self.sampler)
        fields = {
            "Steps": str(self.steps),
            "Sampler": sampler,
            "Schedule type": schedule,
            "CFG scale": _num(self.cfg_scale),
            "Seed": str(self.seed),
            "Size": f"{self.width}x{self.height}",
            "Model hash": self.model_hash,
            "Model": self.model,
            "Lora hashes": ", ".join(f"{name}: {h}" for name, h in self.lora_hashes.items()),
            **self.extra,
            "Version": self.version,
        }
        line = ", ".join(f"{k}: {_quote(v)}" for k, v in fields.items() if v != "")
        prompt = " ".join([self.prompt, *(f"<lora:{name}:{_num(w)}>" for name, w in self.loras)])
        neg = f"\nNegative prompt: {self.negative_prompt}" if self.negative_prompt else ""
        return f"{prompt}{neg}\n{line}"

    @classmethod
    def from_text(cls, text: str) -> GenerationParams:
        """Read A1111-style parameters (ours, A1111's, Forge's), as A1111's ``parse_generation_parameters`` does."""
        *lines, last = text.strip().split("\n")
        if len(_FIELD.findall(last)) < 3:  # no parameter line: all of it is prompt
            lines, last = [*lines, last], ""
        fields = _parse_fields(last)
        prompt_lines, negative_lines, in_negative = [], [], False
        for line in lines:
            if line.startswith("Negative prompt:"):
                in_negative, line = True, line[len("Negative prompt:") :].strip()
            (negative_lines if in_negative else prompt_lines).append(line)
        prompt, loras = _take_lora_tags("\n".join(prompt_lines))
        if not loras and fields.get("Lora weights"):  # charforge 0.1's own key
            for item in fields["Lora weights"].split(", "):
                name, weight = item.rsplit(": ", 1)
                loras.append((name, float(weight)))
        width, height = (int(v) for v in fields.get("Size", "512x512").split("x"))
        return cls(
            prompt=prompt,
            negative_prompt="\n".join(negative_lines),
            steps=int(fields.get("Steps", 0)),
            sampler=label_from_a1111(fields.get("Sampler", ""), fields.get("Schedule type", "")),
            cfg_scale=float(fields.get("CFG scale", 0)),
            seed=int(fields.get("Seed", 0)),
            width=width,
            height=height,
            model=fields.get("Model", ""),
            model_hash=fields.get("Model hash", ""),
            loras=loras,
            lora_hashes=_pairs(fields.get("Lora hashes", "")),
            version=fields.get("Version", ""),
            extra={k: v for k, v in fields.items() if k not in _OWN_FIELDS},
        )


_OWN_FIELDS = {
    "Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model", "Lora hashes", "Version",
    "Lora weights",
}  # fmt: skip


def _num(x: float) -> str:
    return f"{x:g}"


def _quote(value: str) -> str:
    """A1111's ``quote``: JSON-quoted when the value holds a comma, a colon or a line break."""
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ",:\n") else value


# A1111's ``re_param_code`` (modules/infotext_utils.py): key, then a quoted or a comma-free value.
_FIELD = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_LORA_TAG = re.compile(r"\s*<lora:([^:>]+)(?::([^:>]*))?(?::[^>]*)?>")


def _parse_fields(line: str) -> dict[str, str]:
    out = {}
    for key, value in _FIELD.findall(line):
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        out[key.strip()] = value.strip()
    return out


def _take_lora_tags(prompt: str) -> tuple[str, list[tuple[str, float]]]:
    """The prompt without its ``<lora:NAME:WEIGHT>`` tags, and the tags (weight 1 when it is left out)."""
    loras = [(name, float(weight) if weight else 1.0) for name, weight in _LORA_TAG.findall(prompt)]
    return _LORA_TAG.sub("", prompt).strip(), loras


def _pairs(text: str) -> dict[str, str]:
    pairs = (item.rsplit(":", 1) for item in text.split(",") if ":" in item)
    return {name.strip(): value.strip() for name, value in pairs}


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
