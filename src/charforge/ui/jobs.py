"""The job queue, shown under every page: what runs now with its progress bar, what waits, what ended and why;
a job is cancelled by its id (a training job writes a checkpoint first)."""

from __future__ import annotations

import html
import time

import gradio as gr

from .context import Context, guarded


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
        f"<div id='job-progress'>{html.escape(job.label)}: {job.what} {job.done}/{job.total}"
        f"<progress value='{share:.3f}' max='1' style='width:100%'></progress></div>"
    )


def build(ctx: Context) -> None:
    with gr.Accordion("Jobs", open=True):
        progress = gr.HTML(_progress_html(ctx))
        jobs = gr.Dataframe(
            headers=["job", "what", "state", "progress", "error", "queued at"],
            value=_job_rows(ctx),
            interactive=False,
            elem_id="jobs",
        )
        with gr.Row():
            job_id = gr.Textbox(label="job id", scale=2, elem_id="job-id")
            cancel = gr.Button("Cancel job", elem_id="cancel-job")
            message = gr.Markdown()
        timer = gr.Timer(1.5)

    @guarded
    def on_cancel(identifier):
        job = ctx.queue.cancel(identifier.strip())
        return f"Job {job.id}: {job.state}{' (stopping)' if job.state == 'running' else ''}."

    cancel.click(on_cancel, [job_id], [message])
    timer.tick(lambda: (_progress_html(ctx), _job_rows(ctx)), None, [progress, jobs])
