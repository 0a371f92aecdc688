"""The web UI in a real browser: Debian's chromium driven by Playwright, against `charforge ui` started on a free
127.0.0.1 port with a tiny model and the mini world. One person's path from drawings to a lettered page.

Run alone with ``python -m pytest -m browser``. A screenshot of each page goes to ``$CHARFORGE_ARTEFACTS``
(default: the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import PROMPTS

from charforge import api

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it as root)", allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("ui-home")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    log = (home.parent / "ui-server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "charforge", "ui", str(home), "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                log.close()
                raise RuntimeError(f"charforge ui did not start: {(home.parent / 'ui-server.log').read_text()[-2000:]}") from None
            time.sleep(0.5)
    yield home, url
    process.terminate()
    process.wait(30)
    log.close()


@pytest.fixture(scope="module")
def page(server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page(viewport={"width": 1280, "height": 1000})
        tab.set_default_timeout(60_000)
        tab.goto(server[1])
        tab.wait_for_selector("#create-character")
        yield tab
        browser.close()


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("CHARFORGE_ARTEFACTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _fill(page, elem_id: str, value) -> None:
    page.locator(f"#{elem_id} input, #{elem_id} textarea").first.fill(str(value))


def _jobs(home: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in (home / ".charforge" / "jobs").glob("*.json")), key=lambda j: j["created"])


def _wait_job(home: Path, kind: str, states=("done",), timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [j for j in _jobs(home) if j["kind"] == kind]
        if found and found[-1]["state"] in states:
            return found[-1]
        if found and found[-1]["state"] in ("failed", "cancelled", "interrupted") and found[-1]["state"] not in states:
            raise AssertionError(f"{kind} job {found[-1]['state']}: {found[-1]['error']}")
        time.sleep(0.3)
    raise AssertionError(f"no {kind} job reached {states} in {timeout:.0f} s: {_jobs(home)[-1:]}")


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_from_drawings_to_a_lettered_page(server, page, artefacts, drawings, tiny_sd1, tmp_path):
    try:
        _walk_through(server[0], page, artefacts, drawings, tiny_sd1, tmp_path)
    except Exception:
        page.screenshot(path=artefacts / "failure.png", full_page=True)  # what the page showed when it failed
        raise


def _walk_through(home, page, artefacts, drawings, tiny_sd1, tmp_path):
    # -- Characters: create, drop three files (one is text named .png), see why it is refused, edit a caption
    _fill(page, "new-folder", "hero")
    _fill(page, "new-token", "sks")
    _fill(page, "new-class-word", "girl")
    page.click("#create-character")
    page.wait_for_function("document.querySelector('#character input').value === 'hero'")
    fake = tmp_path / "notes.png"
    fake.write_text("these are my notes, not a drawing")
    page.set_input_files("#drawings input[type=file]", [str(drawings / "pose-0.png"), str(drawings / "pose-1.png"), str(fake)])
    page.wait_for_selector("#drawings td[aria-label='notes.png']")
    page.click("#add-drawings")
    page.wait_for_selector("#characters-message >> text=2 drawings prepared")
    report = page.locator("#prepare-report")
    assert "refused" in report.inner_text() and "not an image" in report.inner_text()
    page.locator("#training-images button.thumbnail-item").first.click()
    page.wait_for_function("document.querySelector('#caption-image input, #caption-image textarea').value !== ''")
    _fill(page, "caption-text", "sks girl, drawn by hand")
    page.click("#save-caption")
    page.wait_for_selector("#characters-message >> text=hand edit")
    captions = list((home / "hero" / "captions").glob("*.txt"))
    assert [c.read_text().strip() for c in captions] == ["sks girl, drawn by hand"]
    page.screenshot(path=artefacts / "1-characters.png", full_page=True)

    # -- Train: a tiny model, live loss and a validation grid, stop (checkpoint), resume
    _tab(page, "Train")
    _fill(page, "field-base", tiny_sd1)
    _fill(page, "field-max_train_steps", 5000)
    _fill(page, "field-learning_rate", 0.001)
    page.get_by_text("Advanced settings").click()
    for name, value in [
        ("resolution", 32),
        ("checkpointing_steps", 1000),
        ("validation_steps", 15),
        ("validation_inference_steps", 2),
    ]:
        _fill(page, f"field-{name}", value)
    page.click("#start-training")
    page.wait_for_selector("#train-message >> text=Queued training of run")
    page.wait_for_selector("#validation-grid img", timeout=120_000)
    page.wait_for_selector("#loss-plot canvas, #loss-plot svg")
    page.screenshot(path=artefacts / "2-train-live.png", full_page=True)
    page.click("#stop-training")
    stopped = _wait_job(home, "train", states=("stopped",))
    run = stopped["run"]
    checkpoints = sorted((home / "hero" / "runs" / run / "checkpoints").glob("step-*"))
    assert checkpoints, "the stop wrote no checkpoint"
    step = int(checkpoints[-1].name.split("-")[1])
    _fill(page, "train-to-step", step + 3)
    page.click("#resume-training")
    resumed = _wait_job(home, "resume")
    assert resumed["result"]["steps"] == step + 3
    page.wait_for_selector("#run-status >> text=final result written")
    page.get_by_text("Advanced settings").click()  # folded again, for a screenshot of the live part
    page.screenshot(path=artefacts / "3-train-done.png", full_page=True)

    # -- Generate: two pictures; their parameters are read back from the PNG in the gallery
    _tab(page, "Generate")
    _fill(page, "prompt", "sks girl waving")
    page.locator("#generate-steps input").fill("2")
    _fill(page, "count", 2)
    page.click("#generate")
    _wait_job(home, "generate")
    page.wait_for_function("document.querySelectorAll('#gallery button.thumbnail-item').length >= 2", timeout=30_000)
    page.locator("#gallery button.thumbnail-item").first.click()
    page.wait_for_function("document.querySelector('#picture-params textarea').value.includes('Steps: 2')")
    params = page.locator("#picture-params textarea").input_value()
    assert "sks girl waving" in params and ("Seed: 0" in params or "Seed: 1" in params)
    page.screenshot(path=artefacts / "4-generate.png", full_page=True)

    # -- Evaluate and rate: the rating lands in the workspace's ratings.sqlite, as `charforge rate`'s would
    (home / "prompts.yaml").write_text(PROMPTS)
    _tab(page, "Evaluate")
    _fill(page, "eval-prompts", home / "prompts.yaml")
    _fill(page, "eval-clip", "none")
    _fill(page, "eval-dino", "none")
    _fill(page, "eval-steps", 2)
    page.click("#evaluate")
    _wait_job(home, "evaluate")
    page.click("#show-results")
    page.wait_for_selector("#report-link >> text=Open the report")
    page.click("#start-rating")
    page.wait_for_selector("#rate-picture img")
    page.wait_for_selector("#rate-about >> text=6 left")
    page.keyboard.press("g")  # the shortcut of "Good"
    page.wait_for_selector("#rate-about >> text=5 left")
    page.locator("#rate-tags").get_by_label("hands").check()
    page.click("#rate-flawed")
    page.wait_for_selector("#rate-about >> text=4 left")
    store = sqlite3.connect(home / "hero" / "ratings.sqlite")
    rows = store.execute("select good, tags from ratings order by rated_at").fetchall()
    assert [(good, "hands" in tags) for good, tags in rows] == [(1, False), (0, True)]
    assert api.rating_summary(home / "hero")["rated"] == 2  # what `charforge rate --summary` reads
    page.screenshot(path=artefacts / "5-evaluate-rate.png", full_page=True)

    # -- Comic: the example storyboard, an error shown at its line, then rendered to a page and a PDF
    _tab(page, "Comic")
    page.click("#example-story")
    page.wait_for_selector("#comic-message >> text=Wrote the example")
    story = home / "story.yaml"
    text = story.read_text()
    _set_editor(page, text.replace("location: bedroom", "location: kitchen", 1))
    page.click("#save-story")
    page.wait_for_selector("#comic-message >> text=unknown location")
    message = page.locator("#comic-message").inner_text()
    assert "story.yaml:" in message and "kitchen" in message
    _set_editor(page, text.replace("steps: 30", "steps: 3"))
    page.click("#save-story")
    page.wait_for_selector("#comic-message >> text=is a valid storyboard")
    page.click("#render-comic")
    _wait_job(home, "comic", timeout=300)
    page.wait_for_selector("#comic-pages img", timeout=30_000)
    assert (home / "story" / "page-01.png").is_file() and (home / "story" / "story.pdf").is_file()
    page.screenshot(path=artefacts / "6-comic.png", full_page=True)


def _set_editor(page, text: str) -> None:
    editor = page.locator("#story-editor .cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)
