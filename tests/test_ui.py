"""The web UI's parts that need no browser: upload checks, binding, the job queue, storyboard edits, forms."""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import pytest
from conftest import FAST, run_cli
from PIL import Image

from charforge import api
from charforge.comic.edit import set_panel_image
from charforge.config import TrainConfig
from charforge.data.uploads import UploadRefused, check_upload, safe_name
from charforge.errors import CharforgeError
from charforge.generate.metadata import read_png_params
from charforge.recipes.jobs import JobQueue
from charforge.run import Run
from charforge.ui.app import check_bind, parse_auth


# -- uploads -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../x.png", "x.png"),
        ("/etc/passwd.png", "passwd.png"),
        ("..\\..\\win.png", "win.png"),
        ("CON.png", "CON_.png"),
        ("lpt1.jpg", "lpt1_.jpg"),
        (".hidden.png", "hidden.png"),
        ("dessin été.png", "dessin_ete.png"),
        ("..", "upload"),
    ],
)
def test_upload_names_are_made_safe(name, expected):
    assert safe_name(name) == expected


def test_a_nul_byte_in_a_name_is_refused():
    with pytest.raises(UploadRefused, match="NUL"):
        safe_name("x.png\x00.sh")


def _png_bomb(path: Path, side: int) -> Path:
    """A tiny file that decodes to side x side pixels: one IHDR and highly compressible zero rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * ((side // 8 + 1) * 64), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_upload_checks_read_the_content_not_the_name(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture at all")
    with pytest.raises(UploadRefused, match="not an image"):
        check_upload(text, "notes.png")
    jpeg = tmp_path / "photo.png"  # a JPEG named .png is stored as what it is
    Image.new("RGB", (80, 80), "red").save(jpeg, format="JPEG")
    assert check_upload(jpeg, "photo.png") == ".jpg"
    with pytest.raises(UploadRefused, match="too large"):
        check_upload(jpeg, "photo.png", max_bytes=100)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UploadRefused, match="empty"):
        check_upload(empty, "empty.png")
    with pytest.raises(UploadRefused, match="decompression bomb"):
        check_upload(_png_bomb(tmp_path / "bomb.png", 40_000), "bomb.png")


def test_uploads_land_in_the_workspace_and_are_prepared(tmp_path, drawings):
    ws = api.init(tmp_path / "girl", token="UnicornGirl", class_word="girl")
    bad = tmp_path / "readme.png"
    bad.write_text("hello")
    files = [(drawings / "pose-0.png", "../../../pose-0.png"), (drawings / "pose-1.png", "pose-0.png"), (bad, "readme.png")]
    uploaded, report = api.add_drawings(ws, files)
    assert [p.name for p in uploaded.stored] == ["pose-0.png", "pose-0-2.png"]
    assert all(p.parent == (ws.root / "uploads").resolve() for p in uploaded.stored)
    assert [(r.name, "not an image" in r.reason) for r in uploaded.refused] == [("readme.png", True)]
    assert len(report.written) == 2 and len(ws.training_images()) == 2
    assert not (tmp_path / "pose-0.png").exists()


def test_a_caption_written_by_hand_is_kept_by_caption(workspace):
    image = workspace.training_images()[0]
    api.caption(workspace)
    api.set_caption(workspace, image.name, "UnicornGirl girl, hand-written")
    report = api.caption(workspace)
    assert image.name in report.kept and workspace.caption_for(image) == "UnicornGirl girl, hand-written"
    with pytest.raises(CharforgeError, match="no training image"):
        api.set_caption(workspace, "missing.png", "x")


# -- binding -------------------------------------------------------------------------------------------
def test_a_non_loopback_host_needs_a_login(monkeypatch):
    monkeypatch.delenv("CHARFORGE_UI_AUTH", raising=False)
    monkeypatch.delenv("CHARFORGE_UI_TOKEN", raising=False)
    check_bind("127.0.0.1", None)
    check_bind("localhost", None)
    check_bind("::1", None)
    for host in ("0.0.0.0", "192.168.1.20", "example.org"):
        with pytest.raises(CharforgeError, match="--auth"):
            check_bind(host, None)
    check_bind("0.0.0.0", parse_auth("ana:secret", None))
    assert parse_auth(None, "t" * 20) == [("charforge", "t" * 20)]
    with pytest.raises(CharforgeError, match="user:password"):
        parse_auth("nopassword", None)
    with pytest.raises(CharforgeError, match="16 characters"):
        parse_auth(None, "short")


def test_cli_ui_refuses_a_public_host_without_login(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CHARFORGE_UI_AUTH", raising=False)
    monkeypatch.delenv("CHARFORGE_UI_TOKEN", raising=False)
    code, _, err = run_cli("ui", str(tmp_path), "--host", "0.0.0.0", capsys=capsys)
    assert code == 2 and "--auth" in err and "Traceback" not in err


# -- the job queue -------------------------------------------------------------------------------------
def test_the_queue_trains_stops_with_a_checkpoint_and_resumes(workspace, tiny_sd1, tmp_path):
    queue = JobQueue(tmp_path / "home").start()
    try:
        options = dict(base=str(tiny_sd1), max_train_steps=2000, learning_rate=1e-3, **{**FAST, "checkpointing_steps": 500})
        job = queue.submit("train", workspace.root, **options)
        assert job.run == "run-001"
        with pytest.raises(CharforgeError, match="already queued|already running"):
            queue.submit("resume", workspace.root, run=job.run)  # the same run twice: refused
        second = queue.submit("train", workspace.root, **options)
        assert second.run == "run-002"  # a name not taken by the queued one
        queue.cancel(second.id)
        while queue.get(job.id).done < 3:
            assert queue.get(job.id).state in ("queued", "running"), queue.get(job.id).error
            time.sleep(0.05)
        queue.request(job.id, "save")
        queue.request(job.id, "sample")
        while not Run(workspace.runs_dir / job.run).samples():
            time.sleep(0.05)
        queue.cancel(job.id)
        stopped = queue.wait(job.id, timeout=120)
        assert stopped.state == "stopped" and "checkpoint saved" in stopped.error
        assert queue.get(second.id).state == "cancelled"
        steps = [s for s, _ in Run(workspace.runs_dir / job.run).checkpoints()]
        assert len(steps) >= 2 and steps[-1] < 2000  # "save now", then the stop's own
        resumed = queue.wait(queue.submit("resume", workspace.root, run=job.run, max_train_steps=steps[-1] + 2).id, timeout=120)
        assert resumed.state == "done", resumed.error
        assert resumed.result["steps"] == steps[-1] + 2
    finally:
        queue.close()
    # what the queue wrote is the CLI's: the run resumes and reads as any other
    assert api.run_status(workspace, run=job.run).finished


def test_jobs_survive_a_restart_and_a_crash_is_one_line(tmp_path, workspace):
    home = tmp_path / "home"
    queue = JobQueue(home)  # not started: nothing runs
    waiting = queue.submit("caption", workspace.root)
    crashed = queue.submit("evaluate", workspace.root, run="nope", clip="none", dino="none")
    running = json.loads((home / ".charforge/jobs" / f"{waiting.id}.json").read_text())
    path = home / ".charforge/jobs/ghost.json"
    path.write_text(json.dumps({**running, "id": "ghost", "kind": "train", "state": "running"}))
    again = JobQueue(home)  # a restart: the queued jobs are still there, the one that was running is marked
    assert again.get(waiting.id).state == "queued"
    assert again.get("ghost").state == "interrupted" and "resume" in again.get("ghost").error
    again.start()
    try:
        assert again.wait(waiting.id, timeout=60).state == "done"
        failed = again.wait(crashed.id, timeout=60)
        assert failed.state == "failed" and "nope" in failed.error and "\n" not in failed.error
    finally:
        again.close()


# -- the storyboard edit of "send to a comic panel" ---------------------------------------------------------
def test_sending_a_picture_to_a_panel_keeps_the_rest_of_the_storyboard(tmp_path):
    story = api.write_comic_example(tmp_path / "story.yaml")
    before = story.read_text()
    picture = tmp_path / "outputs" / "pic.png"
    picture.parent.mkdir()
    Image.new("RGB", (64, 64), "pink").save(picture)
    set_panel_image(story, 2, picture)
    set_panel_image(story, 2, picture)  # again: replaced, not added twice
    set_panel_image(story, 9, picture)
    after = story.read_text()
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == ["    image: outputs/pic.png"] * 2  # one line in each of the two panels, nothing else changed
    from charforge.comic.render import Story

    panels = Story.load(story).panels()
    assert [p.number for p in panels if p.spec.image] == [2, 9]
    with pytest.raises(CharforgeError, match="panel 12 does not exist"):
        set_panel_image(story, 12, picture)


# -- forms generated from the settings model ------------------------------------------------------------
def test_train_form_values_become_train_config_fields():
    from charforge.ui.forms import field_values

    names = ["max_train_steps", "captions", "validation_prompts", "resolution", "method"]
    values = field_values(TrainConfig, names, [200.0, False, "[a, b]", None, "lora"])
    assert values == {"max_train_steps": 200, "validation_prompts": ["a", "b"], "method": "lora"}
    TrainConfig(base="world", **values)


# -- what the server serves -----------------------------------------------------------------------------
def test_the_server_serves_files_of_the_home_folder_only(tmp_path):
    import urllib.error
    import urllib.request

    from charforge.ui import serve

    home, outside = tmp_path / "home", tmp_path / "secret.txt"
    home.mkdir()
    (home / "inside.txt").write_text("mine")
    outside.write_text("not for the browser")
    app, url, queue = serve(home, port=0, block=False)
    try:
        assert urllib.request.urlopen(f"{url}gradio_api/file={home / 'inside.txt'}", timeout=10).read() == b"mine"
        for path in (outside, home / ".." / "secret.txt", Path("/etc/passwd")):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10)
            assert refused.value.code in (403, 404), path
    finally:
        queue.close()
        app.close()


def test_a_preset_fills_the_form_and_what_differs_from_it_is_sent():
    from charforge.ui.forms import display_value, field_values
    from charforge.ui.training import _starting_values

    start = _starting_values("thesis-sdxl", "sdxl-base")
    assert start["max_train_steps"] == 1800 and start["resolution"] == 1024
    shown = display_value(TrainConfig, "resolution", start["resolution"])
    assert shown == "1024" and field_values(TrainConfig, ["resolution"], [shown]) == {"resolution": 1024}
    assert display_value(TrainConfig, "validation_seeds", [0, 1]) == "[0, 1]"
    assert display_value(TrainConfig, "captions", None) is False


def test_the_generate_page_sends_an_image_prompt_kept_in_the_workspace(tmp_path):
    """The picture is checked and stored in the workspace's uploads/ (the queued job reads it later), and the job
    draws with it through the chosen preset; a file that is not a picture is refused in one line."""
    import gradio as gr

    from charforge.ui.context import Context
    from charforge.ui.generating import NO_RUN, GeneratePage
    from charforge.world.attributes import HELD_OUT, Scene
    from charforge.world.render import render

    home = tmp_path / "home"
    api.init(home / "hero", token="sks", class_word="girl")
    render(HELD_OUT["mechanic"], Scene("standing", "smiling", "white")).save(tmp_path / "outfit.png")
    queue = JobQueue(home).start()
    try:
        with gr.Blocks():
            page = GeneratePage(Context(home, queue))
        form = ("hero", NO_RUN, "world", "a cartoon of a girl", "", "", "euler", 4, "", 0, 0, 3, 1)
        message = page.on_generate(*form, str(tmp_path / "outfit.png"), "outfit", 0.6)
        job = queue.jobs()[-1]
        assert job.id in message and Path(job.options["image_prompt"]).parent == home / "hero" / "uploads"
        done = queue.wait(job.id, timeout=300)
        assert done.state == "done", done.error
        params = read_png_params(done.result["images"][0])
        assert params.extra["IP-Adapter preset"] == "outfit" and "IP-Adapter" in params.extra
        (tmp_path / "notes.png").write_text("not a picture")
        with pytest.raises(gr.Error, match="image prompt: notes.png"):
            page.on_generate(*form, str(tmp_path / "notes.png"), "the scale below", 0.6)
    finally:
        queue.close()
