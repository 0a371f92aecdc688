"""Train page: settings (the main ones open, the rest folded), the job queue, and a run's live loss and samples."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from .. import api
from ..config import PRESETS, TrainConfig, build_train_config
from ..recipes.jobs import ACTIVE
from .context import Context, guarded
from .forms import display_value, field_input, field_values

MAIN = ["base", "method", "max_train_steps", "learning_rate"]
FOLDED = [name for name in TrainConfig.model_fields if name not in MAIN]


def _starting_values(preset_name: str | None, base: str) -> dict:
    """Every setting as the form starts from it: the defaults, under the preset's."""
    return TrainConfig(**{"base": base, **(PRESETS.get(preset_name) or {} if preset_name else {})}).model_dump()


def build(ctx: Context, character: gr.Dropdown) -> dict:
    page = TrainPage(ctx)
    page.wire(character)
    return {"run": page.run}


class TrainPage:
    """The page's components (laid out on construction) and its handlers, which reach the workspaces and the job
    queue through ``ctx``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        with gr.Tab("Train", id="tab-train"):
            with gr.Row():
                self.main = {name: field_input(TrainConfig, name, "world" if name == "base" else None) for name in MAIN}
            self.preset = gr.Dropdown(
                choices=["", *PRESETS], value="", label="preset (fills the form with its settings; change any of them after)"
            )
            with gr.Accordion("Advanced settings", open=False):
                self.folded = {name: field_input(TrainConfig, name) for name in FOLDED}
            self.start = gr.Button("Start training", variant="primary", elem_id="start-training")
            self.message = gr.Markdown(elem_id="train-message")
            with gr.Row():
                self.run = gr.Dropdown(label="run", choices=[], allow_custom_value=True, elem_id="train-run")
                self.sample_now = gr.Button("Sample now", elem_id="sample-now")
                self.save_now = gr.Button("Save now", elem_id="save-now")
                self.stop = gr.Button("Stop (writes a checkpoint)", variant="stop", elem_id="stop-training")
                self.more_steps = gr.Number(
                    None, precision=0, label="train to step (resume; 0: the run's own)", elem_id="train-to-step"
                )
                self.resume = gr.Button("Resume", elem_id="resume-training")
            with gr.Row():
                self.loss = gr.LinePlot(x="step", y="loss", label="loss", elem_id="loss-plot", height=260)
                self.scores = gr.LinePlot(x="step", y="score", label="score (--eval-every)", elem_id="score-plot", height=260)
                self.sample = gr.Image(label="latest validation grid", interactive=False, elem_id="validation-grid", height=260)
            self.status = gr.Markdown(elem_id="run-status")
            self.timer = gr.Timer(1.5)
        self.fields = list(self.main) + list(self.folded)
        self.inputs = list(self.main.values()) + list(self.folded.values())

    def wire(self, character: gr.Dropdown) -> None:
        self.preset.change(self.on_preset, [self.preset, self.main["base"]], self.inputs)
        self.start.click(self.on_start, [character, self.preset, *self.inputs], [self.message, self.run])
        self.sample_now.click(self._request("sample"), [character, self.run], [self.message])
        self.save_now.click(self._request("save"), [character, self.run], [self.message])
        self.stop.click(self.on_stop, [character, self.run], [self.message])
        self.resume.click(self.on_resume, [character, self.run, self.more_steps], [self.message])
        self.timer.tick(self.on_tick, [character, self.run], [self.run, self.loss, self.scores, self.sample, self.status])

    @guarded
    def on_start(self, name, preset_name, *values):
        ws = self.ctx.workspace(name)
        options = field_values(TrainConfig, self.fields, list(values))
        # what differs from the form as the preset filled it (or from the defaults): the preset gives the rest
        defaults = _starting_values(preset_name, options.get("base") or "world")
        changed = {k: v for k, v in options.items() if k == "base" or v != defaults.get(k)}
        build_train_config(preset=preset_name or None, overrides=changed)  # refuse a bad setting now, not in the queue
        job = self.ctx.queue.submit("train", ws.root, preset=preset_name or None, **changed)
        return f"Queued training of run **{job.run}** (job {job.id}).", gr.Dropdown(
            choices=ws.run_names() + [job.run], value=job.run
        )

    def _running_job(self, name, run_name):
        ws = self.ctx.workspace(name)
        job = self.ctx.queue.running()
        if job is None or job.run != run_name or job.workspace != str(ws.root.resolve()):
            raise gr.Error(f"run {run_name or '?'} is not training now")
        return job

    def _request(self, what):
        def on_request(name, run_name):
            self.ctx.queue.request(self._running_job(name, run_name).id, what)
            return f"Asked run {run_name} to {what} at the end of this step."

        return guarded(on_request)

    @guarded
    def on_stop(self, name, run_name):
        job = self.ctx.queue.cancel(self._running_job(name, run_name).id)
        return f"Stopping run {run_name} (job {job.id}): a checkpoint is written first."

    @guarded
    def on_resume(self, name, run_name, steps):
        ws = self.ctx.workspace(name)
        if not run_name:
            raise gr.Error("choose the run to resume")
        job = self.ctx.queue.submit("resume", ws.root, run=run_name, max_train_steps=int(steps) if steps else None)
        return f"Queued resuming run **{run_name}** (job {job.id})."

    def on_tick(self, name, run_name):
        ctx = self.ctx
        if not name or name not in ctx.names():
            return gr.update(), None, None, None, ""
        ws = api.open_workspace(ctx.root / name)
        runs = ws.run_names()
        queued = [j.run for j in ctx.queue.jobs() if j.state in ACTIVE and j.workspace == str(ws.root.resolve()) and j.run]
        choices = runs + [r for r in queued if r not in runs]
        if not runs or (run_name and run_name not in runs):  # chosen but not started yet
            return gr.update(choices=choices), None, None, None, f"Run **{run_name}** is queued." if run_name else ""
        state = api.run_status(ws, run=run_name or "latest")
        plot = pd.DataFrame({"step": state.steps, "loss": state.losses})
        scored = pd.DataFrame({"step": [e["step"] for e in state.scores], "score": [e["score"] for e in state.scores]})
        grid = str(state.samples[-1]) if state.samples else None
        text = (
            f"Run **{state.name}**: step {int(state.steps[-1]) if state.steps else 0}; checkpoints "
            f"{', '.join(map(str, state.checkpoints)) or 'none yet'}; "
            f"{'final result written' if state.finished else 'no final result yet'}; "
            f"{len(state.samples)} validation grids."
        )
        return gr.update(choices=choices, value=run_name or state.name), plot, scored if state.scores else None, grid, text

    def on_preset(self, preset_name, base_value):
        values = _starting_values(preset_name, base_value or "world")
        return [display_value(TrainConfig, name, values.get(name)) if name != "base" else base_value for name in self.fields]
