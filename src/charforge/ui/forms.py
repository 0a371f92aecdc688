"""Form fields generated from a pydantic settings model, so the UI offers exactly what the CLI and configs take.

Each field of :class:`~charforge.config.TrainConfig` (its type, default, choices and description) becomes one
input; the values come back as the overrides ``api.train`` takes, with empty inputs meaning "not given".
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import gradio as gr
import yaml
from pydantic import BaseModel


def _choices(annotation: Any) -> list | None:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := _choices(arg)) is not None:
                return found
    return None


def _plain(annotation: Any) -> Any:
    """``int | None`` -> int; other unions and generics stay as they are."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _default(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields[name]
    return None if info.is_required() else info.get_default(call_default_factory=True)


def _kind(model: type[BaseModel], name: str) -> str:
    """Which input shows a field: a menu, a box to tick, a number, or text (optional numbers are text: gradio shows an
    empty Number as 0)."""
    annotation = model.model_fields[name].annotation
    if _choices(annotation) is not None:
        return "choice"
    plain = _plain(annotation)
    if plain is bool:
        return "bool"
    if plain in (int, float) and _default(model, name) is not None:
        return "number"
    return "text"


def display_value(model: type[BaseModel], name: str, value: Any) -> Any:
    """A setting as its input shows it."""
    kind = _kind(model, name)
    if kind == "bool":
        return bool(value)
    if kind == "text":
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()  # a scalar ends "..."
    return value


def field_input(model: type[BaseModel], name: str, value: Any = None) -> gr.components.Component:
    info = model.model_fields[name]
    shown = display_value(model, name, value if value is not None else _default(model, name))
    common = dict(label=name.replace("_", " "), info=info.description or "", elem_id=f"field-{name}")
    kind = _kind(model, name)
    if kind == "choice":
        return gr.Dropdown(choices=_choices(info.annotation), value=shown, **common)
    if kind == "bool":
        return gr.Checkbox(value=shown, **common)
    if kind == "number":
        return gr.Number(value=shown, precision=0 if _plain(info.annotation) is int else None, **common)
    return gr.Textbox(value=shown, **common)


def field_values(model: type[BaseModel], names: list[str], values: list[Any]) -> dict[str, Any]:
    """Inputs back to settings: an empty input is "not given"; a text field of a list type is read as YAML."""
    out: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if value is None or value == "":
            continue
        info = model.model_fields[name]
        default = _default(model, name)
        annotation = _plain(info.annotation)
        if annotation is bool and default is None and value is False:  # an unticked "auto" box: not given
            continue
        if isinstance(value, str) and annotation is not str and _choices(model.model_fields[name].annotation) is None:
            value = yaml.safe_load(value)
        if annotation is int and isinstance(value, float):
            value = int(value)
        out[name] = value
    return out
