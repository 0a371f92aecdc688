"""CLI flags made from a pydantic model's fields, so a command's options are declared once, in the model.

Each field becomes ``--field-name`` (or the flags its ``cli(...)`` names), with its description as help and
None as "not given", so ``--config FILE`` and the model's own defaults show through where no flag was given.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import BaseModel

from .options import Options, cli_spec


def _option_type(annotation: Any) -> Any:
    """Typer cannot take Literal / X | None / tuples / our own types; give it the plain type, pydantic validates."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _option_type(args[0])
    if origin is typing.Literal or origin is tuple:
        return str
    if origin in (typing.Union, types.UnionType) and args:
        return _option_type(args[0])
    if origin is list:
        item = _option_type(args[0])
        return list[item if item in (str, int, float, Path) else str]
    return annotation if annotation in (str, int, float, bool, Path) else str


def model_options(model: type[BaseModel], panel: str, *, skip: tuple[str, ...] = ()):
    """Add one ``--flag`` per field of ``model`` (default None = "not given") to the command's signature.

    The command takes them as ``**options`` and builds the model with :func:`build_options`; ``--config FILE`` (YAML
    with the same keys) is added unless the command declares its own."""

    def decorate(func):
        sig = inspect.signature(func)
        # The module's annotations are strings (``from __future__ import annotations``); a replaced signature must
        # carry them resolved, with their Annotated[...] metadata, or typer drops the function's own options' help.
        hints = typing.get_type_hints(func, include_extras=True)
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values() if p.name != "options"]
        if "config" not in sig.parameters:
            params.append(
                inspect.Parameter(
                    "config",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=typer.Option(None, help="YAML file whose keys equal these flags (flags given win)."),
                    annotation=Optional[Path],
                )
            )
        for name, field in model.model_fields.items():
            spec = cli_spec(field)
            if name in skip or spec["hidden"]:
                continue
            kind = str if spec["text"] else _option_type(field.annotation)
            help_text = field.description or ""
            default = spec.get("default", field.get_default(call_default_factory=True))
            if default is not None and kind is not bool and default != "":
                help_text += f" (default: {default})"  # not [..]: rich would read it as markup
            dashed = name.replace("_", "-")
            decls = spec["flags"] or ([f"--{dashed}/--no-{dashed}"] if kind is bool else [f"--{dashed}"])
            option = typer.Option(None, *decls, help=help_text, show_default=False, rich_help_panel=spec["panel"] or panel)
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[kind]))
        func.__signature__ = sig.replace(parameters=params)
        return func

    return decorate


def build_options(model: type[Options], config: Path | None, options: dict[str, Any]):
    """The command's options: the command line's own defaults, then ``--config``, then the flags given."""
    cli_defaults = {n: cli_spec(f)["default"] for n, f in model.model_fields.items() if "default" in cli_spec(f)}
    given = {k: v for k, v in options.items() if v is not None}
    return model.build(model.model_construct(**cli_defaults) if cli_defaults else None, config_file=config, **given)
