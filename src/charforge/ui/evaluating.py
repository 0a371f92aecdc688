"""Evaluate page: score a run's checkpoints, read its report, promote the best; and rate pictures by eye.

Ratings go through :class:`~charforge.evaluate.rating_session.RatingSession` into the workspace's
``ratings.sqlite``, the same store ``charforge rate`` uses, so a rating made in one is seen by the other.
Keys: ``g`` good, ``f`` flawed (with the ticked tags), ``s`` skip.
"""

from __future__ import annotations

import gradio as gr

from .. import api
from ..errors import CharforgeError
from ..evaluate.evaluate import load_metrics
from ..evaluate.rating_session import RATINGS_FILE, RatingSession
from ..evaluate.ratings import TAGS
from ..evaluate.results import EvalMetrics
from .context import Context, file_url, guarded

# Keyboard shortcuts of the rating view (ignored while typing in a text field).
SHORTCUTS = """
<script>
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
  const button = {g: "rate-good", f: "rate-flawed", s: "rate-skip"}[event.key];
  const element = button && document.getElementById(button);
  if (element && element.offsetParent !== null) { element.click(); event.preventDefault(); }
});
</script>
"""


def _metrics_table(metrics: EvalMetrics) -> tuple[list[str], list[list]]:
    keys = metrics.columns()
    rows = [
        [p.label, p.step, p.images, *(None if p.value(k) is None else round(p.value(k), 3) for k in keys)] for p in metrics.points
    ]
    return ["point", "step", "images", *keys], rows


def build(ctx: Context, character: gr.Dropdown) -> None:
    EvaluatePage(ctx).wire(character)


class EvaluatePage:
    """The page's components (laid out on construction) and its handlers, which reach the workspaces, the job queue
    and the ratings through ``ctx``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        with gr.Tab("Evaluate", id="tab-evaluate"):
            with gr.Row():
                self.run = gr.Dropdown(
                    label="run", choices=["latest"], value="latest", elem_id="evaluate-run", allow_custom_value=True
                )
                self.prompts = gr.Textbox(
                    label="prompt set (empty: the default one)", placeholder="prompts.yaml", elem_id="eval-prompts"
                )
                self.clip = gr.Textbox("default", label="CLIP (hub id, folder, or none)", elem_id="eval-clip")
                self.dino = gr.Textbox("default", label="DINO (hub id, folder, or none)", elem_id="eval-dino")
                self.steps = gr.Number(50, precision=0, label="steps", elem_id="eval-steps")
                self.go = gr.Button("Evaluate", variant="primary", elem_id="evaluate")
            self.message = gr.Markdown(elem_id="evaluate-message")
            self.table = gr.Dataframe(label="checkpoints", interactive=False, elem_id="metrics")
            self.report = gr.Markdown(elem_id="report-link")
            self.curves = gr.Image(label="scores over checkpoints", interactive=False, elem_id="score-curves", height=300)
            with gr.Row():
                self.step = gr.Number(None, precision=0, label="checkpoint step to promote to final/")
                self.promote = gr.Button("Promote", elem_id="promote")
                self.load = gr.Button("Show results", elem_id="show-results")
            with gr.Accordion("Rate pictures by eye", open=True):
                self._rating_layout()

    def _rating_layout(self) -> None:
        self.rater = gr.Textbox(label="your name (if several people rate)", elem_id="rater")
        self.start = gr.Button("Start rating", elem_id="start-rating")
        self.picture = gr.Image(label="picture | references", interactive=False, elem_id="rate-picture", height=300)
        self.about = gr.Markdown(elem_id="rate-about")
        self.tags = gr.CheckboxGroup(choices=list(TAGS), label="flaws (for 'flawed')", elem_id="rate-tags")
        with gr.Row():
            self.good = gr.Button("Good (g)", variant="primary", elem_id="rate-good")
            self.flawed = gr.Button("Flawed (f)", variant="stop", elem_id="rate-flawed")
            self.skip = gr.Button("Skip (s)", elem_id="rate-skip")
        self.current = gr.State(None)
        self.skipped = gr.State([])

    def wire(self, character: gr.Dropdown) -> None:
        run, message = self.run, self.message
        self.go.click(self.on_evaluate, [character, run, self.prompts, self.clip, self.dino, self.steps], [message])
        self.load.click(self.on_load, [character, run], [self.table, self.report, self.step, run, self.curves])
        self.promote.click(self.on_promote, [character, run, self.step], [message])
        self.start.click(self.on_start, [character, run, self.rater], [self.picture, self.about, self.current, self.skipped])
        rating_in = [character, run, self.rater, self.current, self.tags, self.skipped]
        rating_out = [self.picture, self.about, self.current, self.tags, self.skipped]
        for button, verdict in ((self.good, "good"), (self.flawed, "flawed"), (self.skip, "skip")):
            button.click(self._rate(verdict), rating_in, rating_out)
        character.change(self.on_runs, [character], [run])

    @guarded
    def on_evaluate(self, name, run_name, prompt_file, clip_id, dino_id, n_steps):
        ws = self.ctx.workspace(name)
        options = {"clip": clip_id or "default", "dino": dino_id or "default", "steps": int(n_steps or 50)}
        if prompt_file:
            options["prompts"] = prompt_file
        job = self.ctx.queue.submit("evaluate", ws.root, run=run_name or "latest", **options)
        return f"Queued the evaluation of run {run_name} (job {job.id}); press Show results when it is done."

    @guarded
    def on_load(self, name, run_name):
        ws = self.ctx.workspace(name)
        metrics = load_metrics(ws, run_name or "latest")
        if (ws.root / RATINGS_FILE).is_file():  # ratings made so far: their human ratio in the table and report
            api.rating_summary(ws, run=run_name or "latest")
            metrics = load_metrics(ws, run_name or "latest")
        headers, rows = _metrics_table(metrics)
        best = metrics.best
        folder = ws.run(run_name or "latest").folder / "eval"
        line = f"[Open the report]({file_url(folder / 'report.html')})"
        if best:
            line += f" · best: **{best.point}** (step {best.step})"
        runs = gr.update(choices=["latest", *ws.run_names()])
        plot = folder / "report" / "scores.png"
        table = gr.Dataframe(value=rows, headers=headers)
        return table, line, best.step if best else None, runs, str(plot) if plot.is_file() else None

    @guarded
    def on_promote(self, name, run_name, at):
        if not at:
            raise gr.Error("give the checkpoint step to promote")
        path = api.promote(self.ctx.workspace(name), run=run_name or "latest", step=int(at))
        return f"Checkpoint {int(at)} is now {path} (the one before is kept as final-before-promote/)."

    def _next(self, name, run_name, who, skipped=()):
        ws = self.ctx.workspace(name)
        with RatingSession(ws, run_name or "latest", who or "") as session:
            todo = [r for r in session.todo if r["file"] not in skipped]
            if not todo:
                return None, f"Nothing left to rate ({session.rated} rated, {len(skipped)} skipped).", None
            row = todo[0]
            image = session.show(row)
            auto = "" if row.get("ok") is None else f"; automated verdict: {'pass' if row['ok'] else 'fail'}"
            text = f"{len(todo)} left · **{row['point']}** · {row['prompt']} · seed {row['seed']}{auto}"
            return image, text, row

    @guarded
    def on_start(self, name, run_name, who):
        try:
            return (*self._next(name, run_name, who), [])
        except CharforgeError as exc:
            raise gr.Error(f"{exc} (evaluate the run first)", print_exception=False) from None

    def _rate(self, verdict: str):
        @guarded
        def on_rate(name, run_name, who, row, ticked, skipped):
            if row is None:
                raise gr.Error("press Start rating first")
            if verdict == "skip":
                skipped = [*skipped, row["file"]]  # back next time the rating starts
            else:
                with RatingSession(self.ctx.workspace(name), run_name or "latest", who or "") as session:
                    session.record(row, verdict == "good", tuple(ticked or ()) if verdict == "flawed" else ())
            image, text, nxt = self._next(name, run_name, who, set(skipped))
            if nxt is None:  # the session is over: the human ratio goes into metrics.json and the report, once
                api.rating_summary(self.ctx.workspace(name), run=run_name or "latest", rater=who or "")
            return image, text, nxt, [], skipped

        return on_rate

    def on_runs(self, name):
        if not name or name not in self.ctx.names():
            return gr.update(choices=["latest"])
        return gr.update(choices=["latest", *self.ctx.workspace(name).run_names()])
