"""The lock: the exact version of every Python package the suite passed with (``requirements.lock``).

    python scripts/lock.py write   # after a fresh install within pyproject's ranges: record what is installed
    python scripts/lock.py check   # the installed set equals the lock (CI runs this after installing)

pip reads the lock as a constraints file (``pip install -c requirements.lock -e '.[test]'``), so it
pins every package that is installed, charforge's own dependencies and theirs, and installs nothing
that is not needed. torch is locked without its local label (``+cpu``): the CPU build and a CUDA build
of the same release both satisfy it.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
NOT_LOCKED = {"charforge", "pip", "setuptools", "wheel"}  # the project itself and the installer's own tools
HEADER = """\
# The exact versions the test suite passed with; pip reads this as a constraints file:
#   pip install torch==2.13.0 && pip install -c requirements.lock -e '.[test]'
# Refresh (see the README's Development section): a new venv, install without -c, `python scripts/lock.py write`,
# then run the tests and the demo before committing it.
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, str]:
    out = {}
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if name and name not in NOT_LOCKED and not name.startswith("nvidia-"):  # CUDA wheels: only on GPU machines
            out[name] = dist.version.split("+")[0]
    return out


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise SystemExit(f"{path}:{number}: expected NAME==VERSION, got {line!r}")
        pins[canonical(name)] = version.strip()
    return pins


def write() -> None:
    pins = installed()
    LOCK.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    print(f"{LOCK}: {len(pins)} packages")


def check() -> int:
    pins, have = read_lock(), installed()
    problems = [
        f"{name}: locked {want}, installed {have.get(name, 'nothing')}" for name, want in pins.items() if have.get(name) != want
    ]
    if problems:
        print(f"{LOCK}: the installed packages differ from the lock:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    extra = sorted(set(have) - set(pins))
    note = f" ({len(extra)} installed package(s) not in the lock: {', '.join(extra)})" if extra else ""
    print(f"lock: {len(pins)} packages installed as locked{note}")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "write":
        write()
    elif command == "check":
        sys.exit(check())
    else:
        sys.exit(__doc__)
