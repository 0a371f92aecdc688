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
    with gr.Tab("Characters", id="tab-characters"):
        with gr.Accordion("New character", open=not ctx.names()):
            with gr.Row():
                folder = gr.Textbox(label="folder name", placeholder="unicorn-girl", elem_id="new-folder")
                token = gr.Textbox(
                    label="identifier", placeholder="UnicornGirl", info="a word the model does not know yet", elem_id="new-token"
                )
                class_word = gr.Textbox(
                    label="class word", placeholder="girl", info="what the character is", elem_id="new-class-word"
                )
            create = gr.Button("Create character", elem_id="create-character")
        with gr.Row():
            uploads = gr.File(label="Drop drawings here", file_count="multiple", type="filepath", elem_id="drawings")
            with gr.Column():
                zoom_out = gr.Number(0, precision=0, label="zoomed-out copies of each drawing", minimum=0, maximum=4)
                add = gr.Button("Add drawings", variant="primary", elem_id="add-drawings")
        report = gr.Dataframe(
            headers=["file", "result", "why"], label="What prepare did", interactive=False, elem_id="prepare-report"
        )
        images = gr.Gallery(
            label="Training images (click one to edit its caption)", columns=6, height=260, elem_id="training-images"
        )
        image_names = gr.State([])
        with gr.Row():
            chosen = gr.Textbox(label="image", interactive=False, elem_id="caption-image")
            caption_text = gr.Textbox(label="caption", lines=2, elem_id="caption-text", scale=3)
            save_caption = gr.Button("Save caption", elem_id="save-caption")
        with gr.Row():
            captioner = gr.Dropdown(choices=captioner_names(), value="template", label="captioner")
            overwrite = gr.Checkbox(False, label="replace hand-edited captions too")
            run_caption = gr.Button("Caption all", elem_id="caption-all")
            run_stats = gr.Button("Describe colours", elem_id="run-stats")
        message = gr.Markdown(elem_id="characters-message")

    def gallery(name):
        if not name:
            return [], []
        ws = ctx.workspace(name)
        try:
            paths = ws.training_images()
        except CharforgeError:  # none yet
            return [], []
        return [(str(p), ws.caption_for(p) or p.name) for p in paths], [p.name for p in paths]

    @guarded
    def on_create(name, tok, word):
        ws = api.init(ctx.new_folder(name), token=tok.strip(), class_word=word.strip())
        return gr.Dropdown(choices=ctx.names(), value=ws.root.name), f"Created {ws.root}."

    @guarded
    def on_add(name, files, zoom):
        ws = ctx.workspace(name)
        if not files:
            raise gr.Error("drop one or more drawings first")
        uploaded, prepared = api.add_drawings(ws, [(Path(f), Path(f).name) for f in files], zoom_out=int(zoom or 0))
        kept = len(prepared.written) if prepared else 0
        refused = len(uploaded.refused) + (len(prepared.skipped) if prepared else 0)
        return _report_rows(uploaded, prepared), *gallery(name), f"{kept} drawings prepared, {refused} refused or skipped."

    def on_select(names, evt: gr.SelectData, name):
        image = names[evt.index]
        ws = ctx.workspace(name)
        return image, ws.caption_for(ws.images_dir / image) or ""

    @guarded
    def on_save(name, image, text):
        path = api.set_caption(ctx.workspace(name), image, text)
        return *gallery(name), f"Saved {path.name} (a hand edit: `caption` keeps it)."

    @guarded
    def on_stats(name):
        report = api.stats(ctx.workspace(name))
        return f"Colour report: [stats.html]({file_url(report.html)})"

    create.click(on_create, [folder, token, class_word], [character, message])
    add.click(on_add, [character, uploads, zoom_out], [report, images, image_names, message])
    images.select(on_select, [image_names, character], [chosen, caption_text])
    save_caption.click(on_save, [character, chosen, caption_text], [images, image_names, message])
    run_stats.click(on_stats, [character], [message])

    @guarded
    def on_caption(name, kind, replace):
        job = ctx.queue.submit("caption", ctx.workspace(name).root, captioner=kind, overwrite=replace)
        return f"Captioning queued (job {job.id}); see Jobs on the Train page."

    run_caption.click(on_caption, [character, captioner, overwrite], [message])
    character.change(gallery, [character], [images, image_names])
