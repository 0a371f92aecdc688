"""Train page: settings (the main ones open, the rest folded), the job queue, and a run's live loss and samples."""

from __future__ import annotations

import time

import gradio as gr
import pandas as pd

from .. import api
from ..config import PRESETS, TrainConfig, build_train_config
from .context import Context, guarded
from .forms import field_input, field_values

MAIN = ["base", "method", "max_train_steps", "learning_rate"]
FOLDED = [name for name in TrainConfig.model_fields if name not in MAIN]


def _job_rows(ctx: Context) -> list[list[str]]:
    rows = []
    for job in reversed(ctx.queue.jobs()[-30:]):
        done = f"{job.done}/{job.total} {job.what}" if job.total else ""
        when = time.strftime("%H:%M:%S", time.localtime(job.created))
        rows.append([job.id, job.label, job.state, done, job.error, when])
    return rows


def _progress_html(ctx: Context) -> str:
    job = ctx.queue.running()
    if job is None:
        return "<div id='job-progress'>No job running.</div>"
    share = job.done / job.total if job.total else 0.0
    return (
        f"<div id='job-progress'>{job.label}: {job.what} {job.done}/{job.total}"
        f"<progress value='{share:.3f}' max='1' style='width:100%'></progress></div>"
    )


def build(ctx: Context, character: gr.Dropdown) -> dict:
    with gr.Tab("Train", id="train"):
        with gr.Row():
            main = {name: field_input(TrainConfig, name, "world" if name == "base" else None) for name in MAIN}
        preset = gr.Dropdown(choices=["", *PRESETS], value="", label="preset (its settings under yours)")
        with gr.Accordion("Advanced settings", open=False):
            folded = {name: field_input(TrainConfig, name) for name in FOLDED}
        start = gr.Button("Start training", variant="primary", elem_id="start-training")
        message = gr.Markdown(elem_id="train-message")
        progress = gr.HTML(_progress_html(ctx))
        with gr.Row():
            run = gr.Dropdown(label="run", choices=[], allow_custom_value=False, elem_id="train-run")
            sample_now = gr.Button("Sample now", elem_id="sample-now")
            save_now = gr.Button("Save now", elem_id="save-now")
            stop = gr.Button("Stop (writes a checkpoint)", variant="stop", elem_id="stop-training")
            more_steps = gr.Number(None, precision=0, label="train to step (resume)")
            resume = gr.Button("Resume", elem_id="resume-training")
        with gr.Row():
            loss = gr.LinePlot(x="step", y="loss", label="loss", elem_id="loss-plot", height=260)
            sample = gr.Image(label="latest validation grid", interactive=False, elem_id="validation-grid", height=260)
        status = gr.Markdown(elem_id="run-status")
        jobs = gr.Dataframe(
            headers=["job", "what", "state", "progress", "error", "queued at"],
            value=_job_rows(ctx),
            interactive=False,
            label="jobs",
        )
        with gr.Row():
            job_id = gr.Textbox(label="job id", scale=2)
            cancel = gr.Button("Cancel job")
        timer = gr.Timer(1.5)

    fields = list(main) + list(folded)
    inputs = list(main.values()) + list(folded.values())

    @guarded
    def on_start(name, preset_name, *values):
        ws = ctx.workspace(name)
        options = field_values(TrainConfig, fields, list(values))
        defaults = TrainConfig(base=options.get("base") or "world").model_dump()
        changed = {k: v for k, v in options.items() if k == "base" or v != defaults.get(k)}  # only what the user set
        build_train_config(preset=preset_name or None, overrides=changed)  # refuse a bad setting now, not in the queue
        job = ctx.queue.submit("train", ws.root, preset=preset_name or None, **changed)
        return f"Queued training of run **{job.run}** (job {job.id}).", gr.Dropdown(
            choices=ws.run_names() + [job.run], value=job.run
        )

    def _running_job(name, run_name):
        ws = ctx.workspace(name)
        job = ctx.queue.running()
        if job is None or job.run != run_name or job.workspace != str(ws.root.resolve()):
            raise gr.Error(f"run {run_name or '?'} is not training now")
        return job

    def on_request(what):
        def handler(name, run_name):
            ctx.queue.request(_running_job(name, run_name).id, what)
            return f"Asked run {run_name} to {what} at the end of this step."

        return guarded(handler)

    @guarded
    def on_stop(name, run_name):
        job = ctx.queue.cancel(_running_job(name, run_name).id)
        return f"Stopping run {run_name} (job {job.id}): a checkpoint is written first."

    @guarded
    def on_resume(name, run_name, steps):
        ws = ctx.workspace(name)
        if not run_name:
            raise gr.Error("choose the run to resume")
        job = ctx.queue.submit("resume", ws.root, run=run_name, max_train_steps=int(steps) if steps else None)
        return f"Queued resuming run **{run_name}** (job {job.id})."

    @guarded
    def on_cancel(identifier):
        job = ctx.queue.cancel(identifier.strip())
        return f"Job {job.id}: {job.state}."

    def on_tick(name, run_name):
        rows, bar = _job_rows(ctx), _progress_html(ctx)
        if not name or name not in ctx.names():
            return rows, bar, gr.update(), None, None, ""
        ws = api.open_workspace(ctx.root / name)
        runs = ws.run_names()
        if not runs or (run_name and run_name not in runs):
            return rows, bar, gr.update(choices=runs), None, None, ""
        state = api.run_status(ws, run=run_name or "latest")
        plot = pd.DataFrame({"step": state.steps, "loss": state.losses})
        grid = str(state.samples[-1]) if state.samples else None
        text = (
            f"Run **{state.name}**: step {int(state.steps[-1]) if state.steps else 0}; checkpoints "
            f"{', '.join(map(str, state.checkpoints)) or 'none yet'}; {'finished' if state.finished else 'not finished'}; "
            f"{len(state.samples)} validation grids."
        )
        return rows, bar, gr.update(choices=runs, value=run_name or state.name), plot, grid, text

    start.click(on_start, [character, preset, *inputs], [message, run])
    sample_now.click(on_request("sample"), [character, run], [message])
    save_now.click(on_request("save"), [character, run], [message])
    stop.click(on_stop, [character, run], [message])
    resume.click(on_resume, [character, run, more_steps], [message])
    cancel.click(on_cancel, [job_id], [message])
    timer.tick(on_tick, [character, run], [jobs, progress, run, loss, sample, status])
    return {"run": run}
