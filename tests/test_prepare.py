"""prepare: what happens to each kind of file a user hands over."""

from __future__ import annotations

import hashlib
import json
from io import BytesIO

import numpy as np
import pytest
from conftest import draw_character
from PIL import Image, ImageCms, ImageDraw, ImageFilter

from charforge import api
from charforge.data.buckets import make_buckets, nearest_bucket


@pytest.fixture
def ws(tmp_path):
    return api.init(tmp_path / "ws", token="sks", class_word="girl")


def _character(size=(300, 300), offset=(0, 0), colour=(200, 30, 60)) -> Image.Image:
    image = Image.new("RGB", size, "white")
    w, h = size
    box = (w // 3 + offset[0], h // 4 + offset[1], 2 * w // 3 + offset[0], 3 * h // 4 + offset[1])
    image.paste(colour, box)
    return image


def test_every_kind_of_file(ws, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _character().save(src / "a_plain.png")
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).ellipse((20, 150, 140, 290), fill=(10, 120, 220, 255))  # unlike a_plain, or it is a near-duplicate
    rgba.save(src / "b_transparent.png")
    rotated = _character((400, 240))
    exif = rotated.getexif()
    exif[0x0112] = 6
    rotated.save(src / "c_rotated.jpg", exif=exif, quality=95)
    _character().save(src / "d_duplicate.png")
    Image.new("RGB", (300, 300), "white").save(src / "e_blank.png")
    _character().filter(ImageFilter.GaussianBlur(6)).save(src / "f_blurred.png")
    Image.new("RGB", (40, 300), "red").save(src / "g_tiny.png")
    good = (src / "a_plain.png").read_bytes()
    (src / "h_truncated.png").write_bytes(good[: len(good) // 2])
    (src / "i_text.png").write_text("not a picture")
    _character((120, 120)).save(src / "j_small.png")
    Image.new("RGB", (300, 300), "white").convert("P").save(src / "k_palette.gif")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}

    report = api.prepare(ws, [src], resolution=256)
    by_name = {f.source.split("/")[-1]: f for f in report.files}
    assert by_name["a_plain.png"].status == "ok", by_name["a_plain.png"]
    assert by_name["b_transparent.png"].status == "ok", by_name["b_transparent.png"]
    assert by_name["c_rotated.jpg"].size == (240, 400)  # EXIF orientation applied
    # the same picture under another name is not added twice; a blank one teaches nothing and is skipped
    assert by_name["d_duplicate.png"].status == "already there"
    assert by_name["d_duplicate.png"].reasons[0] == "already there as a_plain.png"
    assert by_name["d_duplicate.png"].output == by_name["a_plain.png"].output
    assert by_name["e_blank.png"].status == "skipped" and "almost blank" in by_name["e_blank.png"].reasons[0]
    assert any("blurred" in r for r in by_name["f_blurred.png"].reasons)
    assert by_name["g_tiny.png"].status == "skipped" and "too small" in by_name["g_tiny.png"].reasons[0]
    assert by_name["h_truncated.png"].status == "skipped" and "corrupt or truncated" in by_name["h_truncated.png"].reasons[0]
    assert by_name["i_text.png"].reasons == ["not an image file"]
    assert any("upscaled from" in r for r in by_name["j_small.png"].reasons)
    transparent = Image.open(by_name["b_transparent.png"].output)
    assert transparent.mode == "RGB" and transparent.getpixel((2, 2)) == (255, 255, 255)
    assert all(Image.open(f.output).size == (256, 256) for f in report.files if f.output)
    saved = json.loads((ws.root / "prepare-report.json").read_text())
    assert {e["status"] for e in saved} == {"ok", "flagged", "already there", "skipped"}
    # originals are copied untouched, and the inputs were never modified
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()} == before
    for f in report.files:
        if f.output and f.status != "already there":
            name = f.source.split("/")[-1]
            assert hashlib.sha256((ws.originals_dir / name).read_bytes()).hexdigest() == before[name]


def test_subject_framing_never_cuts_the_character(ws, tmp_path):
    # a tall character near the right edge of a wide picture: a centre crop would cut it in half
    image = Image.new("RGB", (600, 300), "white")
    image.paste((0, 90, 200), (470, 20, 590, 280))
    image.save(tmp_path / "edge.png")
    out = Image.open(api.prepare(ws, [tmp_path / "edge.png"], resolution=128).written[0])
    blue = np.abs(np.asarray(out, dtype=int) - [0, 90, 200]).max(axis=2) < 40
    assert blue.sum() > 0.25 * out.width * out.height  # the figure fills the frame
    assert not blue[:, 0].any() and not blue[:, -1].any() and not blue[0].any() and not blue[-1].any()  # margin all round


def test_buckets_keep_aspect_ratio_and_flip_adds_copies(ws, tmp_path):
    tall = Image.new("RGB", (300, 600), "white")
    tall.paste((30, 160, 60), (60, 40, 240, 560))
    tall.save(tmp_path / "tall.png")
    report = api.prepare(ws, [tmp_path / "tall.png"], resolution=256, buckets=True, flip=True)
    out = Image.open(report.written[0])
    assert out.height > out.width and out.width % 64 == 0 and out.height % 64 == 0
    assert abs(out.width * out.height - 256 * 256) <= 256 * 64
    assert (ws.images_dir / "tall-flip.png").is_file()


def test_zoom_out_copies_show_the_character_smaller_elsewhere_on_its_own_background(ws, tmp_path):
    import numpy as np

    pink = (250, 200, 220)
    drawing = Image.new("RGB", (256, 256), pink)
    drawing.paste((30, 60, 200), (70, 40, 190, 230))
    drawing.save(tmp_path / "girl.png")
    api.prepare(ws, [tmp_path / "girl.png"], resolution=128, crop="center", zoom_out=2)

    def figure_box(path):
        blue = np.asarray(Image.open(path).convert("RGB"))[..., 2].astype(int) > 150
        blue &= np.asarray(Image.open(path).convert("RGB"))[..., 0].astype(int) < 100
        ys, xs = np.nonzero(blue)
        return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1

    def area(box):
        return (box[2] - box[0]) * (box[3] - box[1])

    original = figure_box(ws.images_dir / "girl.png")
    copies = [ws.images_dir / f"girl-zoom{k}.png" for k in range(2)]
    boxes = [figure_box(c) for c in copies]
    for copy, box in zip(copies, boxes, strict=True):
        image = Image.open(copy).convert("RGB")
        assert image.size == (128, 128)
        assert 0.45 * area(original) <= area(box) <= 0.85 * area(original)  # shrunk to 70-90 % per side
        border = [image.getpixel((x, y)) for x in range(128) for y in (0, 127)] + [image.getpixel((0, 64))]
        assert all(max(abs(a - b) for a, b in zip(px, pink, strict=True)) <= 3 for px in border)
    assert boxes[0] != boxes[1]  # each copy its own spot
    first = [c.read_bytes() for c in copies]
    for f in ws.images_dir.glob("girl*"):
        f.unlink()
    api.prepare(ws, [tmp_path / "girl.png"], resolution=128, crop="center", zoom_out=2)
    assert [c.read_bytes() for c in copies] == first  # reproducible


def test_bucket_choice():
    buckets = make_buckets(512)
    assert (512, 512) in buckets
    assert all(w % 64 == 0 and h % 64 == 0 and w * h <= 512 * 512 for w, h in buckets)
    w, h = nearest_bucket(0.5, buckets)
    assert h > w and abs(w / h - 0.5) < 0.1


def test_embedded_colour_profile_is_applied_without_damage(tmp_path):
    """An sRGB-tagged drawing goes through the ICC conversion and keeps its colours (within rounding).

    (No wide-gamut profile file can be had offline to test an actual shift; the conversion path is the same.)
    """
    from charforge.data.images import load_image

    image = draw_character(0, 128)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = BytesIO()
    image.save(buffer, format="PNG", icc_profile=icc)
    (tmp_path / "icc.png").write_bytes(buffer.getvalue())
    loaded = load_image(tmp_path / "icc.png")
    assert np.abs(np.asarray(loaded, dtype=int) - np.asarray(image, dtype=int)).max() <= 2


def test_globs_and_background_colour(ws, tmp_path, capsys):
    from conftest import run_cli

    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (50, 50, 150, 150))
    rgba.save(tmp_path / "x1.png")
    rgba.save(tmp_path / "x2.png")
    code, out, err = run_cli(
        "prepare", ws.root, str(tmp_path / "x*.png"), "--background", "#000000", "--resolution", "128", capsys=capsys
    )
    assert code == 0, err
    assert "1 new image(s) (1 already there) prepared" in out and "already there as x1.png" in err  # same pixels
    assert Image.open(ws.images_dir / "x1.png").getpixel((1, 1)) == (0, 0, 0)
    code, _, err = run_cli("prepare", ws.root, str(tmp_path / "nothing*.png"), capsys=capsys)
    assert code == 2 and "matches no file" in err


def test_prepare_again_adds_nothing_new_and_keep_flagged_keeps_a_blank(ws, tmp_path, capsys):
    from conftest import run_cli

    src = tmp_path / "again"
    src.mkdir()
    for i in range(2):
        draw_character(i, size=96).save(src / f"pose-{i}.png")
    Image.new("RGBA", (300, 300), (0, 0, 0, 0)).save(src / "blank.png")  # fully transparent: nothing on it
    code, out, err = run_cli("prepare", ws.root, src, "--resolution", "64", "--zoom-out", "1", capsys=capsys)
    assert code == 0, err
    first = sorted(p.name for p in ws.images_dir.iterdir())
    assert first == ["pose-0-zoom0.png", "pose-0.png", "pose-1-zoom0.png", "pose-1.png"]  # the blank is not kept
    assert "skipped" in err and "--keep-flagged keeps it" in err

    code, out, err = run_cli("prepare", ws.root, src, "--resolution", "64", "--zoom-out", "1", capsys=capsys)
    assert code == 0, err
    assert sorted(p.name for p in ws.images_dir.iterdir()) == first  # idempotent: same content, same files
    assert sorted(p.name for p in ws.originals_dir.iterdir()) == ["pose-0.png", "pose-1.png"]
    assert "0 new image(s) (2 already there)" in out
    saved = json.loads((ws.root / "prepare-report.json").read_text())
    assert [e["status"] for e in saved] == ["skipped", "already there", "already there"]

    code, out, err = run_cli("prepare", ws.root, src / "blank.png", "--resolution", "64", "--keep-flagged", capsys=capsys)
    assert code == 0, err
    assert (ws.images_dir / "blank.png").is_file()


def test_svg_says_how_to_export_a_png(ws, tmp_path, capsys):
    from conftest import run_cli

    svg = tmp_path / "hero.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')
    code, out, err = run_cli("prepare", ws.root, svg, capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert "hero.svg: SVG is not supported: export it as a PNG" in err.strip().splitlines()[-1]


def test_background_copies_put_the_whole_character_on_new_grounds_and_captions_say_so(tmp_path, drawings):
    """prepare --backgrounds: the character (holes inside its outline included) on other grounds, named in the caption."""
    from charforge.data.subject import silhouette

    ws = api.init(tmp_path / "girl", token="sks", class_word="girl")
    api.prepare(ws, [drawings / "pose-0.png"], resolution=64, backgrounds=2)
    images = ws.training_images()
    grounds = ws.copy_backgrounds()
    assert len(images) == 3 and len(grounds) == 2
    source = next(p for p in images if p.stem not in grounds)
    original = np.asarray(Image.open(source))
    shape = silhouette(Image.open(source))
    assert shape is not None and shape.sum() > 0
    for copy in (p for p in images if p.stem in grounds):
        pixels = np.asarray(Image.open(copy))
        assert (pixels[shape] == original[shape]).all()  # the character untouched, holes in the outline too
        assert np.abs(pixels[~shape].astype(int) - 255).max() > 40  # the white ground is gone
    api.caption(ws)
    for copy, words in grounds.items():
        assert ws.caption_for(ws.images_dir / f"{copy}.png") == f"a picture of sks girl, {words} background"
    assert ws.caption_for(source) == "a picture of sks girl"


def test_a_silhouette_fills_holes_and_refuses_a_busy_background():
    from charforge.data.subject import silhouette

    ring = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(ring).ellipse((12, 12, 52, 52), outline="black", width=4)  # a white inside on a white ground
    shape = silhouette(ring)
    assert shape[32, 32] and not shape[2, 2]
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert silhouette(noise) is None
