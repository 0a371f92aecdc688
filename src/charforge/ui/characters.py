"""Characters page: create a workspace, drop drawings in, see what prepare did, edit captions, caption, describe."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import api
from ..data.captions import captioner_names
from ..errors import CharforgeError
from .context import Context, file_url, guarded


def _report_rows(uploaded, report) -> list[list[str]]:
    rows = [[problem.name, "refused", problem.reason] for problem in uploaded.refused]
    for entry in report.files if report else []:
        rows.append([Path(entry.source).name, entry.status, "; ".join(entry.reasons) or "ok"])
    return rows


def build(ctx: Context, character: gr.Dropdown) -> None:
    CharactersPage(ctx).wire(character)


class CharactersPage:
    """The page's components (laid out on construction) and its handlers, which reach the workspaces and the job
    queue through ``ctx``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        with gr.Tab("Characters", id="tab-characters"):
            with gr.Accordion("New character", open=not ctx.names()):
                with gr.Row():
                    self.folder = gr.Textbox(label="folder name", placeholder="unicorn-girl", elem_id="new-folder")
                    self.token = gr.Textbox(
                        label="identifier",
                        placeholder="UnicornGirl",
                        info="a word the model does not know yet",
                        elem_id="new-token",
                    )
                    self.class_word = gr.Textbox(
                        label="class word", placeholder="girl", info="what the character is", elem_id="new-class-word"
                    )
                self.create = gr.Button("Create character", elem_id="create-character")
            with gr.Row():
                self.uploads = gr.File(label="Drop drawings here", file_count="multiple", type="filepath", elem_id="drawings")
                with gr.Column():
                    self.zoom_out = gr.Number(0, precision=0, label="zoomed-out copies of each drawing", minimum=0, maximum=4)
                    self.add = gr.Button("Add drawings", variant="primary", elem_id="add-drawings")
            self.report = gr.Dataframe(
                headers=["file", "result", "why"], label="What prepare did", interactive=False, elem_id="prepare-report"
            )
            self.images = gr.Gallery(
                label="Training images (click one to edit its caption)", columns=6, height=260, elem_id="training-images"
            )
            self.image_names = gr.State([])
            with gr.Row():
                self.chosen = gr.Textbox(label="image", interactive=False, elem_id="caption-image")
                self.caption_text = gr.Textbox(label="caption", lines=2, elem_id="caption-text", scale=3)
                self.save_caption = gr.Button("Save caption", elem_id="save-caption")
            with gr.Row():
                self.captioner = gr.Dropdown(choices=captioner_names(), value="template", label="captioner")
                self.overwrite = gr.Checkbox(False, label="replace hand-edited captions too")
                self.run_caption = gr.Button("Caption all", elem_id="caption-all")
                self.run_stats = gr.Button("Describe colours", elem_id="run-stats")
            self.message = gr.Markdown(elem_id="characters-message")

    def wire(self, character: gr.Dropdown) -> None:
        self.create.click(self.on_create, [self.folder, self.token, self.class_word], [character, self.message])
        self.add.click(
            self.on_add, [character, self.uploads, self.zoom_out], [self.report, self.images, self.image_names, self.message]
        )
        self.images.select(self.on_select, [self.image_names, character], [self.chosen, self.caption_text])
        self.save_caption.click(
            self.on_save, [character, self.chosen, self.caption_text], [self.images, self.image_names, self.message]
        )
        self.run_stats.click(self.on_stats, [character], [self.message])
        self.run_caption.click(self.on_caption, [character, self.captioner, self.overwrite], [self.message])
        character.change(self.gallery, [character], [self.images, self.image_names])

    def gallery(self, name):
        if not name:
            return [], []
        ws = self.ctx.workspace(name)
        try:
            paths = ws.training_images()
        except CharforgeError:  # none yet
            return [], []
        return [(str(p), ws.caption_for(p) or p.name) for p in paths], [p.name for p in paths]

    @guarded
    def on_create(self, name, tok, word):
        ws = api.init(self.ctx.new_folder(name), token=tok.strip(), class_word=word.strip())
        return gr.Dropdown(choices=self.ctx.names(), value=ws.root.name), f"Created {ws.root}."

    @guarded
    def on_add(self, name, files, zoom):
        ws = self.ctx.workspace(name)
        if not files:
            raise gr.Error("drop one or more drawings first")
        uploaded, prepared = api.add_drawings(ws, [(Path(f), Path(f).name) for f in files], zoom_out=int(zoom or 0))
        kept = len(prepared.written) if prepared else 0
        refused = len(uploaded.refused) + (len(prepared.skipped) if prepared else 0)
        return _report_rows(uploaded, prepared), *self.gallery(name), f"{kept} drawings prepared, {refused} refused or skipped."

    def on_select(self, names, evt: gr.SelectData, name):
        image = names[evt.index]
        ws = self.ctx.workspace(name)
        return image, ws.caption_for(ws.images_dir / image) or ""

    @guarded
    def on_save(self, name, image, text):
        path = api.set_caption(self.ctx.workspace(name), image, text)
        return *self.gallery(name), f"Saved {path.name} (a hand edit: `caption` keeps it)."

    @guarded
    def on_stats(self, name):
        report = api.stats(self.ctx.workspace(name))
        return f"Colour report: [stats.html]({file_url(report.html)})"

    @guarded
    def on_caption(self, name, kind, replace):
        job = self.ctx.queue.submit("caption", self.ctx.workspace(name).root, captioner=kind, overwrite=replace)
        return f"Captioning queued (job {job.id}); see Jobs on the Train page."
