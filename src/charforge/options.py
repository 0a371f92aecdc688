"""Typed options for every command: one strict pydantic model per command is the single list of what it takes.

The CLI makes its flags from a model's fields (``cli.py``), ``--config FILE`` fills the same fields from YAML, and
the API validates keyword arguments into the same model, so a typo in a flag, a config file or a Python call is
one error naming the known fields, and ``--help``, the web UI and the API cannot drift apart.

A field says how it appears on the command line through ``cli(...)`` in its ``json_schema_extra``: other flag
names (``-n``), a help panel, a different default on the command line, or no flag at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from .errors import CharforgeError


def cli(*flags: str, panel: str | None = None, default: Any = ..., hidden: bool = False, text: bool = False) -> dict:
    """How a field appears as a flag: ``flags`` replace ``--field-name`` (``"-n", "--num-images"``), ``panel``
    groups it in ``--help``, ``default`` is the command line's when it differs from the API's, ``hidden`` keeps
    it off the command line (Python-only values such as a picture), ``text`` takes it as one string that the
    field's validator parses (``--seeds 1,2,3``, a number or a file)."""
    spec: dict[str, Any] = {"flags": list(flags), "panel": panel, "hidden": hidden, "text": text}
    if default is not ...:
        spec["default"] = default
    return {"cli": spec}


def cli_spec(field) -> dict[str, Any]:
    """A field's ``cli(...)`` settings (the plain ``--field-name`` flag when it has none)."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return {"flags": [], "panel": None, "hidden": False, "text": False, **extra.get("cli", {})}


def split_commas(value: Any) -> Any:
    """``"1,2, 3"`` -> ``["1", "2", "3"]`` (pydantic then checks each item); anything else as given."""
    return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value


CommaInts = Annotated[list[int], BeforeValidator(split_commas)]


class Options(BaseModel):
    """A command's options: strict (an unknown name is an error listing the known ones) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, validate_default=False)

    @classmethod
    def build(
        cls,
        options: Options | None = None,
        *,
        config_file: str | Path | None = None,
        source: str = "options",
        **given: Any,
    ):
        """``options`` (or the defaults), then the YAML ``config_file``'s keys, then ``given`` -- validated once.

        ``given`` are field values (the CLI leaves out flags not given); any error names where it came from."""
        values: dict[str, Any] = {}
        if options is not None:
            if not isinstance(options, cls):
                options = validate(cls, options.model_dump(exclude_unset=True), source)
            values.update({name: getattr(options, name) for name in options.model_fields_set})
        if config_file is not None:
            values.update(read_yaml(config_file))
            source = str(config_file) if not given else f"{config_file} or the options"
        values.update(given)
        return validate(cls, values, source)

    def pick(self, model: type[Options], **changes: Any):
        """These options as another model: the fields both have (the ones set here), plus ``changes``."""
        values = {name: getattr(self, name) for name in self.model_fields_set if name in model.model_fields}
        return model(**values, **changes)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of option: value (``-`` or ``_`` in the keys), with a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CharforgeError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CharforgeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise CharforgeError(f"{path}: expected a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def validate(model: type[BaseModel], values: dict[str, Any], source: str):
    """``model(**values)``; a problem is one line naming ``source``, the field and what is wrong."""
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields))
            raise CharforgeError(f"{source}: unknown option {where!r} (known: {known})") from exc
        if not err["loc"]:  # a rule across fields: its message says it all
            raise CharforgeError(f"{source}: {err['msg'].removeprefix('Value error, ')}") from exc
        message = err["msg"].removeprefix("Value error, ")
        if message.startswith("--"):  # the validator named the flag and the value itself
            raise CharforgeError(f"{source}: {message}") from exc
        raise CharforgeError(f"{source}: {where}: {message} (got {err.get('input')!r})") from exc
