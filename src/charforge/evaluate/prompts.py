"""The evaluation prompt set: what every checkpoint draws, with fixed seeds, so checkpoints compare.

A YAML file (``prompts.yaml`` here is the default, like the thesis' 13 prompts; ``world-prompts.yaml``
is the mini world's, whose prompts also say what the judge should find). ``{token}`` and
``{class_word}`` are filled from the workspace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import CharforgeError
from ..yamlconfig import parse_yaml_model
from .judging import judging

DEFAULT_PROMPTS = Path(__file__).with_name("prompts.yaml")
WORLD_PROMPTS = Path(__file__).with_name("world-prompts.yaml")
_ID = re.compile(r"^[A-Za-z0-9][\w-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptSpec(_Strict):
    id: str = Field(description="short name, used in file names")
    prompt: str
    negative: str = ""
    asked: dict[str, str] = Field(default_factory=dict, description="mini world: attributes the judge should find")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError(f"id {value!r} must be letters, digits, '-' or '_' (it names files)")
        return value

    @field_validator("asked")
    @classmethod
    def _asked(cls, value: dict[str, str]) -> dict[str, str]:
        for name, wanted in value.items():
            try:
                judging().check_value(name, wanted, "asked")
            except CharforgeError as exc:
                raise ValueError(str(exc).removeprefix("asked: ")) from exc
        return value


class PromptSetSpec(_Strict):
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    steps: int | None = Field(None, ge=1, description="inference steps (default: the command's --steps)")
    guidance: float | None = None
    prompts: list[PromptSpec]

    @field_validator("prompts")
    @classmethod
    def _not_empty(cls, value: list[PromptSpec]) -> list[PromptSpec]:
        if not value:
            raise ValueError("no prompts; fix: add at least one `- id: ... prompt: ...`")
        ids = [p.id for p in value]
        if len(set(ids)) != len(ids):
            raise ValueError(f"prompt ids repeat ({', '.join(sorted({i for i in ids if ids.count(i) > 1}))}); make them unique")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("no seeds; fix: e.g. seeds: [0, 1, 2]")
        return value


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt, filled in: what is drawn and what the prompt score compares against."""

    id: str
    text: str  # with the identifier, as drawn
    plain: str  # the identifier removed, as CLIP-T reads it
    negative: str
    asked: dict[str, str]


@dataclass(frozen=True)
class PromptSet:
    source: Path
    seeds: tuple[int, ...]
    steps: int | None
    guidance: float | None
    prompts: tuple[EvalPrompt, ...]

    @property
    def judged(self) -> bool:
        return any(p.asked for p in self.prompts)


def remove_token(text: str, token: str) -> str:
    """The prompt as a model that never saw the character reads it: 'a drawing of sks girl' -> 'a drawing of girl'."""
    return re.sub(r"\s+", " ", re.sub(rf"(?<!\w){re.escape(token)}(?!\w)", "", text)).strip()


def load_prompt_set(path: str | Path, *, token: str, class_word: str) -> PromptSet:
    path = Path(path)
    if not path.is_file():
        hint = f"write the default with `charforge evaluate --example-prompts {path}`"
        raise CharforgeError(f"--prompts {path}: file not found ({hint})")
    spec, _ = parse_yaml_model(path.read_text(encoding="utf-8"), str(path), PromptSetSpec, what="a prompt set")
    prompts = []
    for p in spec.prompts:
        try:
            text = p.prompt.format(token=token, class_word=class_word)
        except (KeyError, IndexError, ValueError) as exc:
            raise CharforgeError(f"{path}: prompt {p.id!r}: only {{token}} and {{class_word}} can be filled in ({exc})") from exc
        prompts.append(EvalPrompt(p.id, text, remove_token(text, token), p.negative, dict(p.asked)))
    return PromptSet(path, tuple(spec.seeds), spec.steps, spec.guidance, tuple(prompts))
