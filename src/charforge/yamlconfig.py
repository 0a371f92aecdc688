"""YAML files validated by pydantic models, with errors that name the file and line and say how to fix it.

``yaml.compose`` keeps every node's position, so a pydantic error location (``panels.3.balloons.0.colour``)
maps back to the line the user has to edit.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import CharforgeError


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The YAML node a pydantic error location points to (the key itself for unknown keys)."""
    node = root
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return node
            node = match[1] if i < len(loc) - 1 else match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            continue  # union branches ("str", "tuple[...]") are not in the file
    return node


def line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    node = _node_at(root, loc)
    return node.start_mark.line + 1 if node is not None else 1


def parse_yaml_model(
    text: str, source: str, model: type[BaseModel], *, what: str, error: type[CharforgeError] = CharforgeError
) -> tuple[Any, yaml.Node | None]:
    """``model`` built from the YAML ``text``; any problem raises ``error`` as ``source:line: what; fix``."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise error(f"{source}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from exc
    if not isinstance(data, dict):
        raise error(f"{source}:1: {what} is a mapping ({', '.join(f'{k}:' for k in list(model.model_fields)[:3])} ...)")
    try:
        return model(**data), root
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in {"str", "tuple"})))
        line = line_of(root, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            known = ", ".join(parent.model_fields) if parent else ""
            raise error(f"{source}:{line}: unknown key {loc[-1]!r}; fix: use one of {known}") from exc
        if err["type"] == "missing":
            raise error(f"{source}:{line}: {where} is missing; fix: add it") from exc
        raise error(f"{source}:{line}: {where or what}: {msg}") from exc


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model a location's parent refers to (for listing the keys it knows)."""
    model: type[BaseModel] | None = root
    annotation: Any = None
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        if part not in model.model_fields:
            branch = next((m for m in _models_in(annotation) if m.__name__ == part), None)
            model = branch or model  # a union branch named by pydantic ("LayoutSpec")
            continue
        annotation = model.model_fields[part].annotation
        found = _models_in(annotation)
        model = found[0] if found else None
    return model


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in (getattr(annotation, "__args__", ()) or ()) for m in _models_in(arg)]
