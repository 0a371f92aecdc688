"""Comic pages: layout geometry, lettering limits, the picture cache, the example page, bad storyboards."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import FAST
from PIL import Image

from charforge import api
from charforge.comic import EXAMPLE
from charforge.comic.fonts import font_source
from charforge.comic.layout import TEMPLATES, Rect, layout_panels, panel_count
from charforge.comic.lettering import LetteringError, layout_balloon, size_balloon
from charforge.comic.panels import fit_around_subject, generation_size, join_regions, subject_box
from charforge.comic.schema import BalloonSpec, LayoutSpec, RowSpec, StoryError
from charforge.generate.metadata import read_png_params
from charforge.models.files import exported_file

AREA = Rect(40, 60, 1200, 1700)


def _gaps(rects: list[Rect]) -> set[int]:
    """Gaps between panels that face each other across a gutter."""
    gaps = set()
    for a in rects:
        for b in rects:
            overlap_y = min(a.y1, b.y1) > max(a.y0, b.y0)
            overlap_x = min(a.x1, b.x1) > max(a.x0, b.x0)
            between_x = any(c.x0 >= a.x1 and c.x1 <= b.x0 and min(c.y1, a.y1) > max(c.y0, a.y0) for c in rects)
            between_y = any(c.y0 >= a.y1 and c.y1 <= b.y0 and min(c.x1, a.x1) > max(c.x0, a.x0) for c in rects)
            if overlap_y and b.x0 >= a.x1 and not between_x:
                gaps.add(b.x0 - a.x1)
            if overlap_x and b.y0 >= a.y1 and not between_y:
                gaps.add(b.y0 - a.y1)
    return gaps


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_templates_fill_the_area_with_equal_gutters(name):
    rects = layout_panels(name, AREA, gutter=17)
    assert len(rects) == panel_count(name)
    assert min(r.x0 for r in rects) == AREA.x0 and max(r.x1 for r in rects) == AREA.x1
    assert min(r.y0 for r in rects) == AREA.y0 and max(r.y1 for r in rects) == AREA.y1
    for i, a in enumerate(rects):  # no overlaps
        for b in rects[i + 1 :]:
            assert min(a.x1, b.x1) <= max(a.x0, b.x0) or min(a.y1, b.y1) <= max(a.y0, b.y0)
    assert _gaps(rects) == ({17} if len(rects) > 1 else set())
    # the area not covered by panels is exactly the gutters: check by painting
    canvas = np.zeros((AREA.y1, AREA.x1), dtype=np.uint8)
    for r in rects:
        canvas[r.y0 : r.y1, r.x0 : r.x1] += 1
    assert canvas.max() == 1


def test_spans_widths_and_right_to_left_order():
    spec = LayoutSpec(grid="AAB\nCDB\nEEE", widths=[1, 1, 2], heights=[2, 1, 1])
    rects = layout_panels(spec, AREA, gutter=10)
    a, b, c, d, e = rects  # reading order left to right
    assert a.x0 == AREA.x0 and a.x1 + 10 == b.x0 and b.y1 + 10 == e.y0  # A spans two columns, B two rows
    assert b.width == pytest.approx(2 * (a.width - 10) / 2, abs=2)  # widths [1, 1, 2]
    assert a.height > c.height  # heights [2, 1, 1]
    assert e.width == AREA.width
    rtl = layout_panels("grid-3x3", AREA, gutter=10, direction="rtl")
    ltr = layout_panels("grid-3x3", AREA, gutter=10)
    assert rtl[0].x1 == AREA.x1 and rtl[0].y0 == AREA.y0  # manga: first panel top right
    assert rtl[2].x0 == AREA.x0 and ltr[2].x1 == AREA.x1
    assert sorted(r.box() for r in rtl) == sorted(r.box() for r in ltr)
    rows = LayoutSpec(rows=[RowSpec(height=1, widths=[1, 3]), RowSpec(height=2, widths=[1])])
    r0, r1, r2 = layout_panels(rows, AREA, gutter=10)
    assert r1.width == pytest.approx(3 * r0.width, abs=3) and r2.height == pytest.approx(2 * r0.height, abs=2)


TEXTS = [
    "Hi!",
    "It's so beautiful! I love it!",
    "Where am I? " * 6,
    "One morning when Lily was getting ready for school she found a box on her bed with a bow on top.",
]


@pytest.mark.parametrize("style", ["speech", "thought", "shout", "whisper"])
@pytest.mark.parametrize("panel_size", [(300, 400), (600, 300), (180, 180)])
def test_balloon_text_never_leaves_its_balloon(style, panel_size):
    fonts = font_source()
    panel = Image.new("RGB", panel_size, "white")
    sizes = []
    for text in TEXTS:
        spec = BalloonSpec(text=text, style=style)
        try:
            balloon = layout_balloon(spec, fonts, panel, [], max_size=26, min_size=8, direction="ltr", order=0, where="p1")
        except LetteringError as exc:
            assert "p1" in str(exc) and "does not fit" in str(exc)
            continue
        x0, y0, x1, y1 = balloon.text_box
        for x, y in [(x0, y0), (x0, y1), (x1, y0), (x1, y1)]:
            assert balloon.contains(x, y), (text, balloon)
        bx0, by0, bx1, by1 = balloon.box
        assert bx0 >= 0 and by0 >= 0 and bx1 <= panel_size[0] and by1 <= panel_size[1]
        font = fonts.at(balloon.block.size)
        assert all(font.getlength(line) <= balloon.block.width + 1 for line in balloon.block.lines)
        sizes.append(balloon.block.size)
    assert sizes and sizes[0] == 26  # short text at full size
    assert sizes == sorted(sizes, reverse=True)  # longer text, smaller (or equal) letters


def test_impossible_fit_names_the_panel():
    with pytest.raises(LetteringError, match="panel 4.*does not fit"):
        size_balloon(BalloonSpec(text="word " * 400), font_source(), (120, 90), 20, 10, "story.yaml:12: panel 4")


def test_balloons_go_where_the_picture_is_quiet():
    panel = Image.new("RGB", (400, 300), "white")
    rng = np.random.default_rng(0)
    noise = (rng.random((300, 200, 3)) * 255).astype(np.uint8)
    panel.paste(Image.fromarray(noise), (0, 0))  # left half busy, right half blank
    balloon = layout_balloon(
        BalloonSpec(text="Over here"), font_source(), panel, [], max_size=20, min_size=8, direction="ltr", order=0, where="p"
    )
    assert balloon.box[0] >= 195


def test_panels_are_drawn_in_shapes_the_model_knows_and_fitted_around_the_character():
    # the mini world's model knows squares only: every panel is drawn at its native square, not at 48x80
    assert generation_size(64, 8, 0.6, square=True) == (64, 64) == generation_size(64, 8, 3.0, square=True)
    assert generation_size(512, 8, 1.0) == (512, 512)
    assert generation_size(512, 8, 5.0) == (728, 360)  # a 5:1 strip is drawn at 2:1 and cropped
    assert generation_size(512, 8, 0.1) == (360, 728)
    # a tall figure on white, fitted into a wide panel: its head and feet stay in (padded with white, not cut)
    figure = Image.new("RGB", (64, 64), "white")
    figure.paste((200, 30, 90), (26, 3, 38, 61))
    wide = np.asarray(fit_around_subject(figure, (300, 100)))
    rows = np.nonzero((wide < 200).any(axis=(1, 2)))[0]
    assert rows.min() > 0 and rows.max() < 99 and rows.max() - rows.min() > 80
    tall = np.asarray(fit_around_subject(figure, (60, 200)))
    columns = np.nonzero((tall < 200).any(axis=(0, 2)))[0]
    assert columns.min() > 0 and columns.max() < 59


def test_balloons_keep_off_the_character_when_there_is_room():
    panel = Image.new("RGB", (400, 300), "white")
    panel.paste((40, 90, 200), (20, 20, 220, 290))  # a flat figure on the left: quiet inside, so only its box repels
    figure = subject_box(panel)
    assert figure == (20.0, 20.0, 220.0, 290.0)
    spec = BalloonSpec(text="Over here")
    kw = dict(max_size=20, min_size=8, direction="ltr", order=0, where="p")
    balloon = layout_balloon(spec, font_source(), panel, [], avoid=figure, **kw)
    assert balloon.box[0] >= 220, balloon.box


def test_join_regions_keeps_both_sides():
    left, right = Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255))
    joined = np.asarray(join_regions([left, right], [1, 1], (200, 100)))
    assert tuple(joined[50, 10]) == (255, 0, 0) and tuple(joined[50, 190]) == (0, 0, 255)
    assert 0 < joined[50, 97, 0] < 255  # cross-faded seam


class CountingPainter:
    """Stands in for the diffusion model: a flat colour from the job's key, and a count of calls."""

    def __init__(self) -> None:
        self.calls: list = []

    def geometry(self, base: str) -> tuple[int, int]:
        return 64, 32

    def __call__(self, job):
        self.calls.append(job)
        digest = hashlib.sha256(job.key().encode()).digest()
        return Image.new("RGB", (job.width, job.height), tuple(digest[:3])), {}


@pytest.fixture
def story(tmp_path):
    path = tmp_path / "story.yaml"
    api.write_comic_example(path)
    return path


def test_lettering_change_does_not_redraw_and_one_panel_reseeds(story, tmp_path):
    painter = CountingPainter()
    first = api.comic(story, painter=painter, show_progress=False)
    assert len(painter.calls) == 10 and first.drawn == 10  # 9 panels, one of them two regions
    page_before = np.asarray(Image.open(first.pages[0]))
    story.write_text(story.read_text().replace("Where am I?", "Which way is home?"))
    second = api.comic(story, painter=painter, show_progress=False)
    assert len(painter.calls) == 10 and second.drawn == 0 and second.cached == 10
    assert not np.array_equal(page_before, np.asarray(Image.open(second.pages[0])))
    third = api.comic(story, painter=painter, panel=4, seed=7, show_progress=False)
    assert len(painter.calls) == 11 and third.drawn == 1 and painter.calls[-1].seed == 7
    sidecar = json.loads(third.sidecars[0].read_text())
    assert [p["number"] for p in sidecar["panels"]] == list(range(1, 10))
    assert sidecar["panels"][3]["pictures"][0]["seed"] == 7
    assert len(sidecar["panels"][6]["pictures"]) == 2  # the two-shot
    # --panel without --seed redraws with the seed after the one it was last drawn with (7 -> 8), never a no-op
    fourth = api.comic(story, painter=painter, panel=4, show_progress=False)
    assert len(painter.calls) == 12 and fourth.drawn == 1 and painter.calls[-1].seed == 8 and fourth.redrawn == (4, 8)


def test_example_renders_with_a_tiny_model_and_two_loras(story, tiny_sd1, workspace, tmp_path):
    run = api.train(workspace, base=str(tiny_sd1), max_train_steps=3, learning_rate=1e-2, show_progress=False, **FAST)
    text = story.read_text().replace("base: world", f"base: {tiny_sd1}").replace("steps: 30", "steps: 2")
    text = text.replace(
        "    prompt: a girl with short pink hair and light skin in a blue onesie with a unicorn horn",
        f"    prompt: UnicornGirl girl\n    lora: {run.final_dir}",
    ).replace(
        "    prompt: a girl with long blonde hair and brown skin in a red dress with cat ears",
        f"    prompt: zoe girl\n    lora: {exported_file(run.final_dir)}\n    weight: 0.5",
    )
    text = text.replace('- prompt: "a cartoon of {lily}, standing, eyes closed"', '- prompt: "a cartoon of {lily} and {zoe}"')
    Image.new("RGB", (50, 80), (250, 120, 200)).save(tmp_path / "sketch.png")
    Image.new("RGB", (90, 60), (10, 200, 10)).save(tmp_path / "photo.png")
    text = text.replace(
        '- prompt: "a cartoon of {lily}, portrait, surprised"',
        '- prompt: "a cartoon of {lily}, portrait"\n    sketch: sketch.png',
    )
    text = text.replace('- prompt: "a cartoon of {lily}, arms up, smiling"', "- image: photo.png")
    story.write_text(text)
    result = api.comic(story, show_progress=False)
    assert result.drawn == 9 and result.pdf.read_bytes().startswith(b"%PDF")
    assert result.pdf.read_bytes().count(b"/Type /Page\n") + result.pdf.read_bytes().count(b"/Type /Page ") >= 1
    page = Image.open(result.pages[0])
    assert page.size == (round(210 / 25.4 * 100), round(297 / 25.4 * 100))
    sidecar = json.loads(result.sidecars[0].read_text())
    cached = result.folder / "panels" / f"{sidecar['panels'][0]['pictures'][0]['key']}.png"
    params = read_png_params(cached)
    # both name the same LoRA the way A1111 lists it: the run's kohya file
    assert params.loras == [("UnicornGirl-run-001", 1.0), ("UnicornGirl-run-001", 0.5)] and params.steps == 2
    assert json.loads(cached.with_name(sidecar["panels"][1]["pictures"][0]["key"] + ".json").read_text())["sketch"]
    assert sidecar["panels"][2]["image"].endswith("photo.png")
    job = json.loads(cached.with_suffix(".json").read_text())
    assert job["prompt"].startswith("a cartoon of UnicornGirl girl and zoe girl") and "pink room" in job["prompt"]
    # the same panel without the LoRAs is a different picture
    plain = story.read_text().replace(f"    lora: {run.final_dir}\n", "")
    plain = plain.replace(f"    lora: {exported_file(run.final_dir)}\n", "")
    story.write_text(plain)
    again = api.comic(story, show_progress=False)
    key = json.loads(again.sidecars[0].read_text())["panels"][0]["pictures"][0]["key"]
    a = np.asarray(Image.open(cached), dtype=np.int16)
    b = np.asarray(Image.open(again.folder / "panels" / f"{key}.png"), dtype=np.int16)
    assert key != sidecar["panels"][0]["pictures"][0]["key"] and np.abs(a - b).mean() > 0.5


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            ("layout: grid-3x3", "layout: grid-3x3\nfont_size: 3"),
            r"story.yaml:\d+: unknown key 'font_size'; fix: use one of title",
        ),
        (
            ("corner: top-left", "corner: top-left\n        colour: red"),
            r"story.yaml:63: unknown key 'colour'; fix: use one of text, corner",
        ),
        (("layout: grid-3x3 ", "layout: zigzag "), r"story.yaml:49: unknown layout 'zigzag'; use one of splash"),
        (("layout: grid-3x3 ", "layout: 2-1-2 "), r"story.yaml:49: 2-1-2 has 5 panels but the page lists 9; add or remove"),
        (("{zoe}, waving", "{zoey}, waving"), r"story.yaml:\d+: panel 6: unknown character \{zoey\}; define it under"),
        (
            ("location: forest\n    balloons:\n      - text: Where", "location: moon\n    balloons:\n      - text: Where"),
            r"story.yaml:\d+: panel 5: unknown location 'moon' \(known: bedroom, forest, outside\)",
        ),
        (
            ("  zoe:\n", "  zoe:\n    lora: missing/zoe.safetensors\n"),
            r"story.yaml:41: character 'zoe': LoRA missing/zoe.safetensors not found .*train it first",
        ),
        (("dpi: 100", "dpi: lots"), r"story.yaml:\d+: page.dpi: Input should be a valid integer"),
        (("size: A4 ", "size: A9 "), r"story.yaml:\d+: page.size: unknown page size 'A9'; use one of A4"),
        (("title: Lily", "title: [Lily"), r"story.yaml:\d+: not valid YAML"),
    ],
)
def test_bad_storyboards_name_file_line_and_fix(story, edit, expected):
    text = story.read_text()
    assert edit[0] in text
    story.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(StoryError, match=expected):
        api.comic(story, painter=CountingPainter(), show_progress=False)


def test_cli_bad_storyboard_is_one_line_exit_2(story):
    story.write_text(story.read_text().replace("layout: grid-3x3 ", "layout: 3-3 "))
    done = subprocess.run([sys.executable, "-m", "charforge", "comic", str(story)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "3-3 has 6 panels but the page lists 9" in done.stderr
    assert "Traceback" not in done.stderr


def test_example_is_not_overwritten(story):
    with pytest.raises(Exception, match="exists; pass --overwrite"):
        api.write_comic_example(story)
    assert EXAMPLE.read_text() == story.read_text()


def test_several_pages_speakers_and_rtl(tmp_path):
    story = tmp_path / "two.yaml"
    story.write_text(
        """title: Two pages
credits: test
page: {size: [600, 800], direction: rtl}
characters:
  a: {prompt: girl a}
  b: {prompt: girl b}
pages:
  - layout: grid-1x2
    panels:
      - prompt: "{a} waving"
        balloons: [{text: "Hello there", speaker: a}]
      - regions: [{prompt: "{a}"}, {prompt: "{b}", width: 2}]
        balloons: [{text: "Hi", speaker: b}]
  - layout: {grid: "AB/CB"}
    panels:
      - image: pic.png
      - prompt: "{b} sitting"
      - prompt: "{a} jumping"
"""
    )
    Image.new("RGB", (40, 40), "red").save(tmp_path / "pic.png")
    painter = CountingPainter()
    result = api.comic(story, painter=painter, show_progress=False)
    assert len(result.pages) == 2 and painter.calls and len(painter.calls) == 5
    assert result.pdf.read_bytes().count(b"/Type /Page\n") + result.pdf.read_bytes().count(b"/Type /Page ") == 2
    first = json.loads(result.sidecars[0].read_text())["panels"]
    assert first[0]["box"][0] > first[1]["box"][0]  # right to left: panel 1 on the right
    second = json.loads(result.sidecars[1].read_text())["panels"]
    assert [p["number"] for p in second] == [3, 4, 5] and "image" in second[0]
    assert second[0]["box"][0] > second[1]["box"][0]  # rtl: the tall right column B comes before A
    story.write_text(story.read_text().replace("speaker: b", "speaker: c"))
    with pytest.raises(StoryError, match=r"two.yaml:13: panel 2: unknown character 'c'"):
        api.comic(story, painter=painter, show_progress=False)


def test_in_a_scene_of_flat_regions_the_crop_follows_the_figure_and_balloons_avoid_it():
    scene = Image.new("RGB", (64, 64), (240, 190, 210))  # a pink wall
    scene.paste((120, 200, 120), (0, 52, 64, 64))  # a green floor
    scene.paste((60, 80, 220), (40, 10, 56, 58))  # the figure, off to the right
    box = subject_box(scene)
    assert box is not None and 38 <= box[0] <= 42 and box[2] >= 54
    tall = np.asarray(fit_around_subject(scene, (30, 64)))  # a narrow panel: the window moves right, onto her
    columns = np.nonzero((np.abs(tall.astype(int) - (60, 80, 220)).max(axis=2) < 30).any(axis=0))[0]
    assert len(columns) > 10
