"""stats: synthetic images with known colours must give back those colours and shares."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from skimage.color import deltaE_ciede2000, rgb2lab

from charforge import api

COLOURS = {(220, 40, 40): 0.5, (40, 60, 200): 0.3, (240, 220, 50): 0.2}


def _lab(rgb):
    return rgb2lab(np.array(rgb, dtype=float).reshape(1, 1, 3) / 255).reshape(3)


def test_known_colours_and_shares_are_recovered(tmp_path):
    ws = api.init(tmp_path / "ws", token="sks", class_word="girl")
    image = Image.new("RGB", (400, 400), "white")  # background: must be excluded
    top = 100
    for colour, share in COLOURS.items():
        height = round(200 * share)
        image.paste(colour, (100, top, 300, top + height))
        top += height
    image.save(tmp_path / "a.png")
    api.prepare(ws, [tmp_path / "a.png"], resolution=256)
    report = api.stats(ws, colours=6)
    palette = report.images[0].palette
    for colour, share in COLOURS.items():
        best = min(palette, key=lambda s: deltaE_ciede2000(_lab(s.rgb), _lab(colour)))
        assert deltaE_ciede2000(_lab(best.rgb), _lab(colour)) < 2.0, (colour, best)
        assert abs(best.share - share) < 0.03, (colour, best)
    assert sum(s.share for s in palette) > 0.97
    saved = json.loads(report.palette_json.read_text())
    assert saved["overall"][0]["hex"] == "#dc2828"
    assert report.images[0].background == "#ffffff" and 0.2 < report.images[0].subject_share < 0.3
    html = report.html.read_text()
    assert "#dc2828" in html and "palettes.png" in html
    for name in ("palettes.png", "hsv.png", "hue-wheel.png", "stats.json"):
        assert (report.folder / name).is_file()
    hue = json.loads((report.folder / "stats.json").read_text())["hsv"]["overall"]["hue"]
    assert np.argmax(hue) in (0, 35)  # red dominates the saturation-weighted hue histogram


def test_a_portrait_that_runs_off_the_bottom_edge_keeps_its_white_background_out_of_the_palette(tmp_path):
    """The demo character's portrait: her body touches the bottom edge, the three other edges are white."""
    from conftest import draw_character

    ws = api.init(tmp_path / "ws", token="sks", class_word="girl")
    portrait = draw_character(2, size=256)  # REFERENCE_SCENES[2] is the portrait
    assert np.asarray(portrait)[-1].min() < 200  # it does run off the bottom edge
    portrait.save(tmp_path / "portrait.png")
    api.prepare(ws, [tmp_path / "portrait.png"], resolution=256)
    report = api.stats(ws, colours=6)
    assert report.images[0].background == "#ffffff" and report.images[0].subject_share < 0.6
    near_white = sum(s.share for s in report.images[0].palette if min(s.rgb) > 230)
    assert near_white < 0.1, report.images[0].palette
