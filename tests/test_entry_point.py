"""The installed ``charforge`` command, run as a user runs it (a subprocess of the entry-point script):
usage errors are click's short message and exit 2, a package outside the tested ranges is one line,
``--version`` and ``doctor`` say what charforge runs on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from charforge.environment import requirement_mismatches

ENTRY_POINT = Path(sys.executable).parent / "charforge"  # installed by `pip install -e .` beside this interpreter


def charforge(*args: str, **env: str) -> subprocess.CompletedProcess:
    if not ENTRY_POINT.exists():
        pytest.fail(f"{ENTRY_POINT} is missing: install charforge with `pip install -c requirements.lock -e '.[test]'`")
    return subprocess.run(
        [str(ENTRY_POINT), *args], capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", **env}
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "hero", "--max-steps", "3"], ["No such option: --max-steps", "--max-train-steps"]),
        (["init", "hero", "--token", "sks"], ["Missing option", "--class-word"]),
        (["generate", "ws", "-n", "many"], ["Invalid value for '-n' / '--num-images'"]),
        (["trian"], ["No such command", "trian"]),
        (["world", "render"], ["Missing argument"]),
    ],
)
def test_usage_errors_are_short_with_exit_2(args, expected):
    done = charforge(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "Usage: charforge" in done.stderr
    for fragment in expected:
        assert fragment in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 8


def test_help_takes_h_everywhere():
    for args in (["-h"], ["train", "-h"], ["generate", "-h"], ["world", "-h"], ["world", "demo", "-h"]):
        done = charforge(*args)
        assert done.returncode == 0 and "Usage: charforge" in done.stdout, (args, done.stderr)


def test_version_and_doctor():
    from charforge import __version__

    done = charforge("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"charforge {__version__}"
    done = charforge("doctor")
    assert done.returncode == 0, done.stderr
    labels = [line.split("  ")[0].strip() for line in done.stdout.splitlines()]
    for label in ("charforge", "torch", "diffusers", "transformers", "peft", "accelerate", "device", "--mixed-precision auto"):
        assert label in labels, done.stdout
    assert "all within the tested ranges" in done.stdout


def test_a_package_outside_the_tested_range_is_one_line(monkeypatch, capsys, tmp_path):
    from importlib import metadata

    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "5.24.0" if name == "transformers" else real(name))
    found = requirement_mismatches()
    assert [m.package for m in found] == ["transformers"]
    assert str(found[0]) == f"transformers 5.24.0 is installed, but charforge works with transformers{found[0].wanted}"
    assert "<5.24" in found[0].wanted

    # Through the CLI: one line, exit 2, naming the package, the version found and the range that works; nothing made.
    code, out, err = run_cli("init", tmp_path / "x", "--token", "sks", "--class-word", "girl", capsys=capsys)
    assert code == 2 and "Traceback" not in out + err
    assert err.strip().splitlines() == [
        f"error: transformers 5.24.0 is installed, but charforge works with transformers{found[0].wanted}; reinstall the "
        "tested set with `pip install -c requirements.lock -e .` (or set CHARFORGE_SKIP_VERSION_CHECK=1 to try anyway)"
    ]
    assert not (tmp_path / "x").exists()
    code, out, _ = run_cli("doctor", capsys=capsys)  # doctor still runs, to say what is wrong
    assert code == 0 and "transformers 5.24.0 is installed" in out
    monkeypatch.setenv("CHARFORGE_SKIP_VERSION_CHECK", "1")
    code, _, err = run_cli("init", tmp_path / "x", "--token", "sks", "--class-word", "girl", capsys=capsys)
    assert code == 0, err


def test_every_option_of_every_command_says_what_it_does():
    import typer

    from charforge.cli import app

    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    missing = []
    for path, command in walk(typer.main.get_command(app), ["charforge"]):
        if not (command.help or "").strip():
            missing.append(" ".join(path))
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option" and not (getattr(param, "help", None) or "").strip():
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert missing == []
