"""Generate page: prompt, LoRAs with weights, an image prompt (an outfit or a style from a picture), sampler and the
rest; a gallery that recalls each picture's settings (read from its PNG), reuses them, and sends a picture to a comic
panel."""

from __future__ import annotations

import random
from pathlib import Path

import gradio as gr

from ..comic.edit import set_panel_image
from ..data.uploads import store_uploads
from ..generate.conditions import IP_PRESETS
from ..generate.metadata import read_png_params
from ..generate.schedulers import DEFAULT_SAMPLER, SAMPLERS
from .context import Context, guarded

NO_RUN = "(none: the base model alone)"
BY_SCALE = "the scale below"  # the image prompt acts in every layer at the scale; else one of IP_PRESETS


def build(ctx: Context, character: gr.Dropdown, story_path: gr.Textbox) -> None:
    GeneratePage(ctx).wire(character, story_path)


class GeneratePage:
    """The page's components (laid out on construction) and its handlers, which reach the workspaces and the job
    queue through ``ctx``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        with gr.Tab("Generate", id="tab-generate"):
            self._settings_layout()
            self.message = gr.Markdown(elem_id="generate-message")
            self.gallery = gr.Gallery(label="Gallery (newest first)", columns=6, height=320, elem_id="gallery")
            self.paths = gr.State([])
            self.chosen = gr.State("")
            self.params = gr.Textbox(
                label="parameters of the chosen picture (from its PNG)", lines=4, interactive=False, elem_id="picture-params"
            )
            with gr.Row():
                self.again = gr.Button("Use these settings again", elem_id="use-again")
                self.download = gr.DownloadButton("Download", elem_id="download")
                self.panel = gr.Number(1, precision=0, label="comic panel", minimum=1)
                self.to_panel = gr.Button("Send to the comic panel", elem_id="send-to-panel")
            self.refresh = gr.Button("Refresh gallery", size="sm")
            self.timer = gr.Timer(3.0)  # inside the tab: a component directly in gr.Tabs would become a tab of its own
            self.last = gr.State(())

    def _settings_layout(self) -> None:
        with gr.Row():
            self.run = gr.Dropdown(
                label="draw with run", choices=["latest", NO_RUN], value="latest", elem_id="generate-run", allow_custom_value=True
            )
            self.base = gr.Textbox(label="base model (empty: the run's)", placeholder="world, a hub id, a folder or .safetensors")
        self.prompt = gr.Textbox(label="prompt", lines=2, elem_id="prompt")
        self.negative = gr.Textbox(label="negative prompt", elem_id="negative-prompt")
        self.loras = gr.Textbox(label="more LoRAs, one per line: PATH or PATH:WEIGHT", lines=2)
        with gr.Accordion("image prompt: an outfit or a style from a picture (IP-Adapter)", open=False), gr.Row():
            self.picture = gr.Image(type="filepath", label="picture", height=160, elem_id="image-prompt")
            self.ip_how = gr.Dropdown(choices=[BY_SCALE, *IP_PRESETS], value=BY_SCALE, label="acts through")
            self.ip_scale = gr.Slider(0.0, 1.5, value=0.6, step=0.05, label="scale", elem_id="ip-scale")
        with gr.Row():
            self.sampler = gr.Dropdown(choices=list(SAMPLERS), value=DEFAULT_SAMPLER, label="sampler")
            self.steps = gr.Number(30, precision=0, label="steps", minimum=1, maximum=500, elem_id="generate-steps")
            self.guidance = gr.Textbox("", label="guidance (empty: the model's recommended)", elem_id="guidance")
            self.width = gr.Number(0, precision=0, label="width (0: native)", minimum=0)
            self.height = gr.Number(0, precision=0, label="height (0: native)", minimum=0)
        with gr.Row():
            self.seed = gr.Number(0, precision=0, label="seed", elem_id="seed")
            self.dice = gr.Button("🎲", scale=0, elem_id="dice")
            self.count = gr.Number(1, precision=0, label="pictures", minimum=1, maximum=64, elem_id="count")
            self.go = gr.Button("Generate", variant="primary", elem_id="generate")

    def wire(self, character: gr.Dropdown, story_path: gr.Textbox) -> None:
        shown = [self.gallery, self.paths]
        settings = [self.prompt, self.negative, self.sampler, self.steps, self.guidance, self.width, self.height, self.seed]
        self.go.click(
            self.on_generate,
            [character, self.run, self.base, self.prompt, self.negative, self.loras, self.sampler, self.steps, self.guidance,
             self.width, self.height, self.seed, self.count, self.picture, self.ip_how, self.ip_scale],
            [self.message],
        )  # fmt: skip
        self.dice.click(lambda: random.randrange(2**31), None, [self.seed])
        self.gallery.select(self.on_select, [self.paths], [self.chosen, self.params, self.download])
        self.again.click(self.on_again, [self.chosen], [*settings, self.message])
        self.to_panel.click(self.on_to_panel, [self.chosen, self.panel, story_path], [self.message])
        self.refresh.click(self.on_gallery, [character], shown)
        character.change(self.on_gallery, [character], shown).then(self.on_runs, [character], [self.run])
        self.timer.tick(self.on_tick, [character, self.last], [*shown, self.last])

    def on_gallery(self, name):
        if not name or name not in self.ctx.names():
            return [], []
        found = self.ctx.workspace(name).outputs()
        return [str(p) for p in found], [str(p) for p in found]

    def on_runs(self, name):
        if not name or name not in self.ctx.names():
            return gr.update(choices=["latest", NO_RUN])
        return gr.update(choices=["latest", *self.ctx.workspace(name).run_names(), NO_RUN])

    @guarded
    def on_generate(
        self, name, run_name, base_model, text, neg, extra, sampler_name, n_steps, cfg, w, h, first_seed, n,
        picture=None, ip_how=BY_SCALE, ip_scale=0.6,
    ):  # fmt: skip
        ws = self.ctx.workspace(name)
        prompts = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if not prompts:
            raise gr.Error("write a prompt first (one per line for several)")
        options = {
            "prompts": prompts,
            "negative_prompt": neg or "",
            "loras": [line.strip() for line in (extra or "").splitlines() if line.strip()],
            "sampler": sampler_name,
            "steps": int(n_steps or 30),
            "guidance": _number(cfg, "guidance"),
            "width": int(w) if w else None,
            "height": int(h) if h else None,
            "seed": int(first_seed or 0),
            "num_images": int(n or 1),
        }
        if run_name == NO_RUN:
            options["use_run"] = False
        else:
            options["run"] = run_name or "latest"
        if base_model:
            options["base"] = base_model
        if picture:
            options.update(self._image_prompt(ws, Path(picture), ip_how, ip_scale))
        job = self.ctx.queue.submit("generate", ws.root, **options)
        return f"Queued {len(prompts) * options['num_images']} pictures (job {job.id}); the gallery fills as they are drawn."

    @staticmethod
    def _image_prompt(ws, picture: Path, how: str, scale) -> dict:
        """The picture checked and kept in the workspace's uploads/ (the job runs later, from a file of its own), and
        how it acts: at ``scale`` in every layer, or through a preset's blocks."""
        stored = store_uploads(ws, [(picture, picture.name)])
        if stored.refused:
            raise gr.Error(f"image prompt: {stored.refused[0]}")
        acts = {"ip_scale": float(scale)} if how == BY_SCALE else {"ip_preset": how}
        return {"image_prompt": str(stored.stored[0]), **acts}

    def on_select(self, found, evt: gr.SelectData):
        path = found[evt.index]
        try:
            text = read_png_params(path).to_text()
        except ValueError as exc:
            text = str(exc)
        return path, text, path

    def on_again(self, path):
        if not path:
            raise gr.Error("choose a picture in the gallery first")
        p = read_png_params(path)
        sampler_name = next((k for k, v in SAMPLERS.items() if v[0] == p.sampler), DEFAULT_SAMPLER)
        # A PNG names its LoRAs as A1111 does (by file name, not path): the run menu and the LoRA box stay as they are.
        used = ", ".join(f"{name} at {weight:g}" for name, weight in p.loras) or "no LoRA"
        note = f"Settings of {Path(path).name} restored (it was drawn with {used} on {p.model or 'its base'})."
        return p.prompt, p.negative_prompt, sampler_name, p.steps, f"{p.cfg_scale:g}", p.width, p.height, p.seed, note

    @guarded
    def on_to_panel(self, path, number, story):
        if not path:
            raise gr.Error("choose a picture in the gallery first")
        if not story:
            raise gr.Error("open a storyboard on the Comic page first")
        set_panel_image(story, int(number), path)
        return f"Panel {int(number)} of {Path(story).name} now uses {Path(path).name}; render the comic to see it."

    def on_tick(self, name, shown):
        found = tuple(self.on_gallery(name)[1])
        if found == tuple(shown):
            return gr.update(), gr.update(), shown
        return list(found), list(found), found


def _number(text: str, what: str) -> float | None:
    if not (text or "").strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise gr.Error(f"{what} must be a number (got {text!r})") from None
