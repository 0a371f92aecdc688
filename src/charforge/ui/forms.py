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


def field_input(model: type[BaseModel], name: str, value: Any = None) -> gr.components.Component:
    info = model.model_fields[name]
    default = value if value is not None else (None if info.is_required() else info.get_default(call_default_factory=True))
    label, help_text = name.replace("_", " "), info.description or ""
    annotation = _plain(info.annotation)
    if (choices := _choices(info.annotation)) is not None:
        return gr.Dropdown(choices=choices, value=default, label=label, info=help_text, elem_id=f"field-{name}")
    if annotation is bool:
        return gr.Checkbox(value=bool(default), label=label, info=help_text, elem_id=f"field-{name}")
    if annotation in (int, float) and default is not None:  # gradio shows an empty Number as 0: optional ones are text
        return gr.Number(
            value=default, label=label, info=help_text, precision=0 if annotation is int else None, elem_id=f"field-{name}"
        )
    text = (
        ""
        if default is None
        else (default if isinstance(default, str) else yaml.safe_dump(default, default_flow_style=True).strip())
    )
    return gr.Textbox(value=text, label=label, info=help_text, elem_id=f"field-{name}")


def field_values(model: type[BaseModel], names: list[str], values: list[Any]) -> dict[str, Any]:
    """Inputs back to settings: an empty input is "not given"; a text field of a list type is read as YAML."""
    out: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if value is None or value == "":
            continue
        info = model.model_fields[name]
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        annotation = _plain(info.annotation)
        if annotation is bool and default is None and value is False:  # an unticked "auto" box: not given
            continue
        if isinstance(value, str) and annotation is not str and _choices(model.model_fields[name].annotation) is None:
            value = yaml.safe_load(value)
        if annotation is int and isinstance(value, float):
            value = int(value)
        out[name] = value
    return out
