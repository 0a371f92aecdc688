"""The quick start's main job: runs end to end, can be run again, never replaces someone else's folder."""

from __future__ import annotations

import pytest

from charforge.demo import run_demo
from charforge.errors import CharforgeError
from charforge.generate.metadata import read_png_params


def test_demo_runs_twice_and_protects_other_folders(tmp_path):
    folder = tmp_path / "demo"
    first = run_demo(folder, steps=3, show_progress=False)
    assert (first.run_dir / "final" / "pytorch_lora_weights.safetensors").is_file()
    assert (first.run_dir / "final" / "UnicornGirl.safetensors").is_file()
    assert first.contact_sheet.is_file() and len(first.images) == 4
    assert read_png_params(first.images[0]).prompt.startswith("a picture of UnicornGirl")
    again = run_demo(folder, steps=3, show_progress=False)  # its own folder: replaced, no flag needed
    assert again.contact_sheet.is_file()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "drawing.png").write_bytes(b"precious")
    with pytest.raises(CharforgeError, match="is not a charforge demo"):
        run_demo(mine, steps=3, show_progress=False)
    assert (mine / "drawing.png").read_bytes() == b"precious"
