"""Comic page: edit a storyboard (its errors shown with their line), render it, preview the page, redraw one
panel with another seed, download the pages and the PDF."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import api
from ..errors import CharforgeError
from .context import Context, guarded, one_line

STORY_FILE = "story.yaml"


def build(ctx: Context) -> gr.Textbox:
    page = ComicPage(ctx)
    page.wire()
    return page.path


class ComicPage:
    """The page's components (laid out on construction) and its handlers; the storyboard is kept in ``ctx.root``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        with gr.Tab("Comic", id="tab-comic"):
            with gr.Row():
                self.path = gr.Textbox(
                    str(ctx.root / STORY_FILE), label="storyboard file (in the home folder)", elem_id="story-path", scale=3
                )
                self.open_button = gr.Button("Open", elem_id="open-story")
                self.example = gr.Button("New from the example", elem_id="example-story")
            self.editor = gr.Code(language="yaml", label="storyboard", lines=24, elem_id="story-editor")
            with gr.Row():
                self.save = gr.Button("Save and check", elem_id="save-story")
                self.render = gr.Button("Render", variant="primary", elem_id="render-comic")
                self.panel = gr.Number(1, precision=0, label="redraw panel", minimum=1)
                self.seed = gr.Textbox("", label="with seed (empty: the next one)", elem_id="redraw-seed")
                self.redraw = gr.Button("Redraw panel", elem_id="redraw-panel")
            self.message = gr.Markdown(elem_id="comic-message")
            self.pages = gr.Gallery(label="pages", columns=2, height=900, object_fit="contain", elem_id="comic-pages")
            self.files = gr.File(
                label="download (pages and PDF)", file_count="multiple", interactive=False, elem_id="comic-files"
            )
            self.timer = gr.Timer(2.0)
            self.shown = gr.State("")

    def wire(self) -> None:
        path, editor, message = self.path, self.editor, self.message
        self.open_button.click(self.on_open, [path], [editor, path, message])
        self.example.click(self.on_example, [path], [editor, path, message])
        self.save.click(self.on_save, [path, editor], [message])
        self.render.click(self.on_render, [path, editor], [message])
        self.redraw.click(self.on_render, [path, editor, self.panel, self.seed], [message])
        self.timer.tick(self.on_tick, [path, self.shown], [self.pages, self.files, self.shown])

    def story_file(self, text: str) -> Path:
        """The storyboard must live in the home folder: the UI reads and writes nothing outside it."""
        root = self.ctx.root
        target = Path(text or "").expanduser()
        target = (target if target.is_absolute() else root / target).resolve()
        if not target.is_relative_to(root.resolve()) or target.suffix not in (".yaml", ".yml"):
            raise gr.Error(f"keep the storyboard in {root} as a .yaml file")
        return target

    @guarded
    def on_open(self, text):
        target = self.story_file(text)
        if not target.is_file():
            raise gr.Error(f"{target} does not exist yet; press 'New from the example'")
        return target.read_text(encoding="utf-8"), str(target), "Opened."

    @guarded
    def on_example(self, text):
        target = api.write_comic_example(self.story_file(text))
        return target.read_text(encoding="utf-8"), str(target), f"Wrote the example storyboard to {target}."

    def _save(self, text, content) -> Path:
        return api.save_storyboard(self.story_file(text), content or "")

    @guarded
    def on_save(self, text, content):
        target = self._save(text, content)
        try:
            api.check_comic(target)
        except CharforgeError as exc:
            return f"❌ {one_line(exc)}"
        return f"✅ {target.name} is a valid storyboard."

    @guarded
    def on_render(self, text, content, number=None, new_seed=""):
        target = self._save(text, content)
        api.check_comic(target)
        options = {"story": str(target)}
        if number is not None:
            if not str(new_seed or "").strip().lstrip("-").isdigit() and str(new_seed or "").strip():
                raise gr.Error(f"the seed must be a whole number (got {new_seed!r})")
            options.update(panel=int(number), seed=int(new_seed) if str(new_seed or "").strip() else None)
        job = self.ctx.queue.submit("comic", **options)
        what = f"panel {int(number)}" if number else "the comic"
        return f"Queued drawing {what} (job {job.id}); the pages appear when it is done."

    def on_tick(self, text, last):
        try:
            target = self.story_file(text)
        except gr.Error:
            return gr.update(), gr.update(), last
        found, pdf = api.comic_files(target)
        stamp = ";".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in found)
        if stamp == last:
            return gr.update(), gr.update(), last
        listed = [str(p) for p in found] + ([str(pdf)] if pdf else [])
        return [str(p) for p in found], listed or None, stamp
