"""Comic pages from a storyboard file: layouts, panel pictures (cached), lettering, PNG and PDF pages."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).with_name("example.yaml")
