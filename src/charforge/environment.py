"""What charforge runs on: the installed package set checked against the ranges that work, and a report.

A library upgraded by hand past the range charforge was tested with (transformers 5.24 without peft
0.22, say) fails deep inside that library with a message about the library. Checking the declared
ranges once at start-up turns that into one line naming the package, the version found and the range
that works. The ranges are read from charforge's own installed metadata, so pyproject.toml stays the
one place they are written.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata

from .errors import CharforgeError

SKIP_CHECK_VARIABLE = "CHARFORGE_SKIP_VERSION_CHECK"
REPORTED = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors", "huggingface-hub", "typer")


@dataclass(frozen=True)
class Mismatch:
    package: str
    found: str | None  # None: not installed
    wanted: str

    def __str__(self) -> str:
        found = f"{self.package} {self.found} is installed" if self.found else f"{self.package} is not installed"
        return f"{found}, but charforge works with {self.package}{self.wanted}"


def requirement_mismatches(distribution: str = "charforge") -> list[Mismatch]:
    """Every runtime requirement of ``distribution`` that the installed packages do not satisfy."""
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version

    try:
        requirements = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return []
    out = []
    for line in requirements:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra (test, ...) or another platform's requirement
        try:
            found = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(Mismatch(req.name, None, str(req.specifier)))
            continue
        try:
            # Local labels (torch's +cpu / +cu124) do not change which release it is.
            ok = req.specifier.contains(Version(found).public, prereleases=True)
        except InvalidVersion:
            ok = True
        if not ok:
            out.append(Mismatch(req.name, found, str(req.specifier)))
    return out


def check_requirements() -> None:
    """Refuse to start on a package set outside the tested ranges (``CHARFORGE_SKIP_VERSION_CHECK=1`` overrides)."""
    if os.environ.get(SKIP_CHECK_VARIABLE):
        return
    mismatches = requirement_mismatches()
    if mismatches:
        raise CharforgeError(
            f"{mismatches[0]}; reinstall the tested set with `pip install -c requirements.lock -e .` "
            f"(or set {SKIP_CHECK_VARIABLE}=1 to try anyway)"
        )


def installed_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def doctor_report() -> list[tuple[str, str]]:
    """(label, value) rows: versions, the device, and the precision ``--mixed-precision auto`` picks here."""
    import torch

    from . import __version__
    from .train.loop import cpu_has_native_bf16, resolve_precision

    rows = [("charforge", __version__), ("python", platform.python_version())]
    rows += [(name, installed_version(name)) for name in REPORTED]
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} device(s))"
    else:
        native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
        device = f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {native}"
    rows.append(("device", device))
    auto = resolve_precision("auto")
    rows.append(("--mixed-precision auto", {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}[auto]))
    mismatches = requirement_mismatches()
    rows.append(("requirements", "; ".join(map(str, mismatches)) if mismatches else "all within the tested ranges"))
    return rows
