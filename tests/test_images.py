"""Image loading: every colour mode is handled; bad files are named with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from charforge.data.images import ImageProblem, load_image


def _save(tmp_path, name, image, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGB", "1", "LA"])
def test_colour_modes_become_rgb(tmp_path, mode):
    image = Image.new("RGB", (80, 70), (200, 30, 60)).convert(mode)
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    out = load_image(_save(tmp_path, f"x.{fmt.lower()}", image, format=fmt))
    assert out.mode == "RGB" and out.size == (80, 70)


def test_16bit_greyscale_scaled_not_clipped(tmp_path):
    array = np.full((70, 80), 32768, dtype=np.uint16)
    out = load_image(_save(tmp_path, "g16.png", Image.fromarray(array)))
    assert out.mode == "RGB"
    assert 120 <= out.getpixel((5, 5))[0] <= 135  # half of 65535 -> about half of 255


def test_transparency_goes_onto_white(tmp_path):
    image = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (20, 20, 60, 60))
    out = load_image(_save(tmp_path, "a.png", image))
    assert out.getpixel((2, 2)) == (255, 255, 255)
    assert out.getpixel((40, 40)) == (255, 0, 0)


def test_exif_rotation_applied(tmp_path):
    image = Image.new("RGB", (120, 80), "white")
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(_save(tmp_path, "r.jpg", image, format="JPEG", exif=exif))
    assert out.size == (80, 120)


def test_bad_files_named_with_reason(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageProblem, match="notes.png: not an image file"):
        load_image(text)
    good = _save(tmp_path, "ok.png", Image.new("RGB", (100, 100), "red"))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ImageProblem, match="cut.png: corrupt or truncated"):
        load_image(truncated)
    small = _save(tmp_path, "tiny.png", Image.new("RGB", (40, 90), "red"))
    with pytest.raises(ImageProblem, match=r"tiny.png: too small \(40x90\)"):
        load_image(small)
