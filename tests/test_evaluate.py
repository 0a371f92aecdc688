"""charforge evaluate / rate / sweep: metrics with tiny random CLIP and DINO models built from configs,
palette ordering on known colours, the quality rule, caching, promotion, ratings and resumable sweeps."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
import torch
from conftest import FAST, PROMPTS, unicorn_girl_workspace
from PIL import Image, ImageDraw
from safetensors.torch import load_file
from typer.testing import CliRunner

from charforge import api
from charforge.errors import CharforgeError
from charforge.evaluate.encoders import ClipEncoder, DinoEncoder
from charforge.evaluate.palette import palette_distance
from charforge.evaluate.quality import Thresholds, best_point, calibrate, halving_seeds, successive_halving
from charforge.evaluate.ratings import Rating, RatingStore, cohen_kappa
from charforge.evaluate.results import PointSummary
from charforge.evaluate.scores import References, cached_embeddings, leave_one_out, mean_similarity
from charforge.models.files import exported_file
from charforge.models.tiny import save_tiny_clip, save_tiny_dino
from charforge.recipes.sweep import sweep


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("enc") / "clip")


@pytest.fixture(scope="session")
def tiny_dino(tmp_path_factory):
    return save_tiny_dino(tmp_path_factory.mktemp("enc") / "dino")


def figure(body, hair, size: int = 64) -> Image.Image:
    """A flat cartoon figure on white with known colours."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((22, 6, 42, 26), fill=hair)
    draw.rectangle((20, 26, 44, 58), fill=body)
    return image


# -- metrics -------------------------------------------------------------------------------------------
def test_clip_and_dino_embeddings_are_deterministic_unit_vectors(tiny_clip, tiny_dino):
    images = [figure((200, 30, 30), (250, 120, 200)), figure((30, 60, 200), (250, 120, 200)), figure((20, 160, 60), "black")]
    clip, dino = ClipEncoder.load(str(tiny_clip), batch_size=2), DinoEncoder.load(str(tiny_dino), batch_size=2)
    a, b = clip.images(images), ClipEncoder.load(str(tiny_clip)).images(images)
    assert a.shape == (3, clip.model.config.projection_dim) and torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(a.norm(dim=1), torch.ones(3), atol=1e-5)
    texts = clip.texts(["a girl waving", "a dog on a beach"])
    assert texts.shape == (2, a.shape[1])
    d = dino.images(images)
    assert d.shape == (3, dino.model.config.hidden_size) and torch.allclose(d, dino.images(images), atol=1e-6)
    sims = mean_similarity(d, d)
    assert all(-1.0 <= s <= 1.0 for s in sims)
    loo = leave_one_out(d)
    assert len(loo) == 3 and all(-1.0 <= v <= 1.0 for v in loo) and leave_one_out(d[:1]) == []


def test_encoder_of_the_wrong_kind_is_refused(tiny_clip, tiny_dino, tmp_path):
    with pytest.raises(CharforgeError, match="a clip model, not a ViT/DINO"):
        DinoEncoder.load(str(tiny_clip))
    with pytest.raises(CharforgeError, match="a vit model, not a CLIP"):
        ClipEncoder.load(str(tiny_dino))
    with pytest.raises(CharforgeError, match="--clip .*cannot load"):
        ClipEncoder.load(str(tmp_path / "nothing-here"))


def test_reference_embeddings_are_cached_per_reference_set(tiny_dino, tmp_path):
    paths = []
    for i, colour in enumerate([(200, 30, 30), (30, 60, 200)]):
        paths.append(tmp_path / f"r{i}.png")
        figure(colour, "black").save(paths[-1])
    encoder = DinoEncoder.load(str(tiny_dino))
    cache = tmp_path / "cache"
    first = cached_embeddings(cache, encoder, References.load(paths, ["a", "b"]))
    assert len(list(cache.glob("*.safetensors"))) == 1
    calls = []
    original = encoder.images
    encoder.images = lambda images: calls.append(1) or original(images)
    again = cached_embeddings(cache, encoder, References.load(paths, ["a", "b"]))
    assert calls == [] and torch.equal(first, again)
    figure((20, 160, 60), "black").save(paths[1])  # a changed reference set is embedded again
    cached_embeddings(cache, encoder, References.load(paths, ["a", "b"]))
    assert calls == [1] and len(list(cache.glob("*.safetensors"))) == 2


def test_palette_distance_orders_known_colours():
    references = [figure((40, 80, 220), (250, 120, 200)) for _ in range(3)]
    same = [figure((40, 80, 220), (250, 120, 200))]
    near = [figure((60, 95, 210), (240, 130, 190))]
    hair_wrong = [figure((40, 80, 220), (120, 70, 20))]
    far = [figure((30, 170, 40), (250, 230, 20))]
    d = [palette_distance(images, references) for images in (same, near, hair_wrong, far)]
    assert d[0] < 1.0 and d[0] < d[1] < d[2] < d[3], d


def test_quality_thresholds_are_calibrated_on_the_references():
    thresholds = calibrate({"dino": [0.8, 0.7, 0.9], "clip_i": []}, [0.3, 0.25], judged=False)
    assert thresholds.values == {"dino": 0.7, "clip_t": 0.25}
    assert any("one reference" in n for n in thresholds.notes)
    assert thresholds.passes({"dino": 0.71, "clip_t": 0.3}) is True
    assert thresholds.passes({"dino": 0.69, "clip_t": 0.3}) is False
    assert thresholds.passes({"dino": 0.9, "clip_t": 0.2}) is False
    assert Thresholds().passes({"palette": 3.0}) is None
    judged = calibrate({}, None, judged=True)
    assert judged.passes({"identity": 1.0, "fidelity": 1.0}) and not judged.passes({"identity": 1.0, "fidelity": 0.67})


def test_best_checkpoint_rule():
    points = [
        PointSummary(step=0, base=True, quality_ratio=0.9),
        PointSummary(step=300, quality_ratio=0.4, dino=0.5),
        PointSummary(step=600, quality_ratio=0.5, dino=0.4),
        PointSummary(step=900, quality_ratio=0.5, dino=0.6),
        PointSummary(step=1200, quality_ratio=0.5, dino=0.6),
    ]
    assert best_point(points).step == 900  # base excluded; tie on ratio -> identity -> earlier step
    assert best_point(points[:1]) is None


def test_successive_halving_keeps_the_better_half_and_picks_among_the_last_round():
    """Per-seed identity of four checkpoints: step 200 looks best on seed 0 alone, but not on more seeds."""
    table = {  # point -> identity share per seed 0..3
        "s100": [0.1, 0.1, 0.1, 0.1],
        "s200": [0.9, 0.0, 0.0, 0.0],
        "s300": [0.5, 0.6, 0.6, 0.6],
        "s400": [0.4, 0.7, 0.7, 0.7],
    }
    asked = []

    def summarise_at(names, seeds):
        asked.append((list(names), list(seeds)))
        return [
            PointSummary(step=int(n[1:]), point=n, quality_ratio=0.0, identity_share=sum(table[n][s] for s in seeds) / len(seeds))
            for n in names
        ]

    assert halving_seeds([0, 1, 2, 3]) == [[0], [0, 1], [0, 1, 2, 3]]
    assert halving_seeds([5, 6, 7]) == [[5], [5, 6], [5, 6, 7]] and halving_seeds([9]) == [[9]]
    result = successive_halving(list(table), [0, 1, 2, 3], summarise_at)
    assert asked == [(["s100", "s200", "s300", "s400"], [0]), (["s200", "s300"], [0, 1]), (["s300"], [0, 1, 2, 3])]
    assert result.best.point == "s300"
    # without halving (every point on every seed) s400 is the best: halving trades that risk for half the pictures
    full = summarise_at(list(table), [0, 1, 2, 3])
    assert best_point(full).point == "s400"
    assert [s.point for s in result.summaries] == list(table)  # each point summarised on its last round's seeds
    assert result.summaries[0].identity_share == 0.1 and result.summaries[2].identity_share == pytest.approx(0.575)


def test_cohen_kappa():
    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == 1.0
    assert cohen_kappa([True, True, False, False], [True, False, True, False]) == 0.0
    assert cohen_kappa([], []) is None


# -- a run evaluated end to end --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, drawings, tiny_sd1):
    root = tmp_path_factory.mktemp("eval")
    ws = api.init(root / "girl", token="UnicornGirl", class_word="girl")
    api.prepare(ws, [drawings])
    fast = {**FAST, "checkpointing_steps": 2}
    api.train(ws, base=str(tiny_sd1), max_train_steps=4, learning_rate=5e-3, rank=4, show_progress=False, **fast)
    prompts = root / "prompts.yaml"
    prompts.write_text(PROMPTS)
    return ws, prompts


def test_evaluate_scores_every_checkpoint_and_writes_a_report(trained, tiny_clip, tiny_dino):
    ws, prompts = trained
    result = api.evaluate(ws, prompts=prompts, clip=str(tiny_clip), dino=str(tiny_dino), steps=2, show_progress=False)
    metrics = json.loads((result.folder / "metrics.json").read_text())
    assert [p["point"] for p in metrics["points"]] == ["step-000000", "step-000002", "step-000004"]
    assert len(metrics["images"]) == 3 * 2
    for row in metrics["images"]:
        assert -1 <= row["clip_i"] <= 1 and -1 <= row["dino"] <= 1 and -1 <= row["clip_t"] <= 1 and row["palette"] >= 0
        assert isinstance(row["ok"], bool)
    assert set(metrics["thresholds"]["values"]) == {"clip_i", "dino", "clip_t"}
    assert metrics["best"]["step"] in (2, 4)
    assert metrics["prompts"][0]["scored_as"] == "girl waving"  # the identifier is not shown to CLIP-T
    assert metrics["timing"]["drawn"] == 6
    assert result.report.is_file()
    with Image.open(result.folder / "report" / "progress.gif") as gif:
        assert gif.n_frames == 3
    html = result.report.read_text()
    assert "grid-step-000004.png" in html and "loss.png" in html and "Best checkpoint" in html
    # the trained checkpoints draw something else than the base model
    base = Image.open(result.folder / "images" / "step-000000" / "waving-s0.png")
    late = Image.open(result.folder / "images" / "step-000004" / "waving-s0.png")
    assert base.tobytes() != late.tobytes()

    again = api.evaluate(ws, prompts=prompts, clip=str(tiny_clip), dino="none", steps=2, show_progress=False)
    assert again.metrics.timing["drawn"] == 0  # every picture came from the store
    assert "dino" not in again.metrics.images[0] and again.metrics.encoders["dino"] is None


def test_halving_evaluation_draws_fewer_pictures_and_scores_its_leader_as_the_full_evaluation(trained, tiny_dino, tmp_path):
    ws, _ = trained
    prompts = tmp_path / "four-seeds.yaml"
    prompts.write_text(PROMPTS.replace("seeds: [0]", "seeds: [0, 1, 2, 3]"))
    common = dict(prompts=prompts, clip="none", dino=str(tiny_dino), steps=2, show_progress=False)
    halved = api.evaluate(ws, halving=True, **common).metrics
    assert [r["seeds"] for r in halved.rounds] == [[0], [0, 1], [0, 1, 2, 3]]
    assert [len(r["points"]) for r in halved.rounds] == [2, 1, 1]
    assert halved.best.point == halved.rounds[-1]["points"][0]
    # base 2 prompts x 4 seeds, both checkpoints on seed 0, the leader on seeds 1-3: 8 + 4 + 6
    assert len(halved.images) == halved.timing["scored"] == 18
    full = api.evaluate(ws, halving=False, **common).metrics
    assert full.timing["drawn"] == 24 - 18 and full.rounds is None  # the rest; the halving's pictures were kept
    leader = halved.best.point
    assert full.point_named(leader).model_dump() == halved.point_named(leader).model_dump()
    assert full.point_named("step-000000").model_dump() == halved.point_named("step-000000").model_dump()


def test_evaluating_a_dreambooth_run_draws_each_checkpoint_as_generate_does(drawings, tiny_sd1, tmp_path):
    """A DreamBooth checkpoint with a trained text encoder: evaluate swaps in its UNet and text encoder."""
    ws = api.init(tmp_path / "db", token="UnicornGirl", class_word="girl")
    api.prepare(ws, [drawings])
    options = {**FAST, "checkpointing_steps": 1}
    api.train(
        ws, base=str(tiny_sd1), method="dreambooth", train_text_encoder=True, max_train_steps=2, learning_rate=1e-2,
        show_progress=False, **options,
    )  # fmt: skip
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(PROMPTS)
    result = api.evaluate(ws, prompts=prompts, clip="none", dino="none", steps=2, show_progress=False)
    size = dict(width=FAST["resolution"], height=FAST["resolution"])
    for point, step in {"step-000001": 1, "step-000002": 2}.items():
        at = api.ModelChoice(checkpoint=step)
        drawn = api.generate(ws, ["UnicornGirl girl waving"], model=at, seeds=[0], steps=2, show_progress=False, **size)
        evaluated = Image.open(result.folder / "images" / point / "waving-s0.png")
        assert evaluated.tobytes() == Image.open(drawn.images[0]).tobytes(), point


def test_batched_evaluation_draws_the_same_pictures_with_their_own_seeds(trained, tmp_path):
    import shutil

    import numpy as np

    ws, prompts = trained
    drawn = {}
    for batch in (1, 4):
        copy = tmp_path / f"b{batch}"
        shutil.copytree(ws.root, copy, ignore=shutil.ignore_patterns("eval"))
        options = dict(clip="none", dino="none", steps=2, draw_batch_size=batch, show_progress=False)
        result = api.evaluate(copy, prompts=prompts, **options)
        assert result.metrics.timing["drawn"] == 6
        drawn[batch] = {p.relative_to(result.folder): Image.open(p) for p in sorted((result.folder / "images").rglob("*.png"))}
    assert drawn[1].keys() == drawn[4].keys() and len(drawn[1]) == 6
    for name, alone in drawn[1].items():
        batched = drawn[4][name]
        assert batched.text["parameters"] == alone.text["parameters"]  # the seed and settings of that very picture
        difference = np.abs(np.asarray(batched, dtype=int) - np.asarray(alone, dtype=int)).max()
        assert difference <= 2, (name, difference)


def test_promote_makes_a_checkpoint_final(trained):
    ws, _ = trained
    run_dir = ws.run_dir("latest")
    final = api.promote(ws, step=2)
    promoted = load_file(str(final / "pytorch_lora_weights.safetensors"))
    checkpoint = load_file(str(run_dir / "checkpoints" / "step-000002" / "pytorch_lora_weights.safetensors"))
    assert promoted.keys() == checkpoint.keys() and all(torch.equal(promoted[k], checkpoint[k]) for k in promoted)
    assert (run_dir / "final-before-promote" / "pytorch_lora_weights.safetensors").is_file()
    assert (exported_file(final)).is_file()  # the kohya copy is rewritten too
    assert json.loads((run_dir / "run.json").read_text())["promoted_from_step"] == 2
    with pytest.raises(CharforgeError, match="no checkpoint at step 3"):
        api.promote(ws, step=3)


def test_latest_is_the_run_trained_last_not_the_one_evaluated_or_promoted_last(workspace, tiny_sd1):
    first = api.train(
        workspace, base=str(tiny_sd1), run="first", max_train_steps=2, show_progress=False, **{**FAST, "checkpointing_steps": 1}
    )
    api.train(workspace, base=str(tiny_sd1), run="second", max_train_steps=1, show_progress=False, **FAST)
    os.utime(first.run_dir / "config.yaml", (1, 1))  # however coarse the clock: "first" started long ago
    assert workspace.run("latest").name == "second"
    api.promote(workspace, run="first", step=1)  # rewrites first/final and first/run.json
    (first.run_dir / "eval").mkdir()
    assert workspace.run("latest").name == "second"
    api.resume(workspace, run="first", max_train_steps=3)  # training it again makes it the latest
    assert workspace.run("latest").name == "first"


def test_evaluate_errors_are_one_line(trained, tiny_sdxl, tmp_path):
    ws, prompts = trained
    with pytest.raises(CharforgeError, match="run 'nope' not found"):
        api.evaluate(ws, run="nope", prompts=prompts, clip="none", dino="none")
    with pytest.raises(CharforgeError, match=r"no checkpoint at step 7 \(has: 2, 4\)"):
        api.evaluate(ws, prompts=prompts, checkpoints=[7], clip="none", dino="none")
    empty = tmp_path / "empty.yaml"
    empty.write_text("seeds: [0]\nprompts: []\n")
    with pytest.raises(CharforgeError, match=r"empty.yaml:2: prompts: no prompts"):
        api.evaluate(ws, prompts=empty, clip="none", dino="none")
    world = tmp_path / "world.yaml"
    world.write_text("prompts:\n  - id: a\n    prompt: x\n    asked: {pose: flying}\n")
    with pytest.raises(CharforgeError, match="unknown pose 'flying'; valid values"):
        api.evaluate(ws, prompts=world, clip="none", dino="none")
    world.write_text("prompts:\n  - id: a\n    prompt: x\n    asked: {pose: sitting}\n")
    with pytest.raises(CharforgeError, match="not a mini-world character"):
        api.evaluate(ws, prompts=world, clip="none", dino="none")
    with pytest.raises(CharforgeError, match="is a SDXL model but the run was trained on sd1|SDXL.*trained on"):
        api.evaluate(ws, prompts=prompts, base=str(tiny_sdxl), clip="none", dino="none", steps=1, show_progress=False)


def test_cli_evaluate_unknown_run_exits_2(trained):
    from charforge.cli import app

    ws, _ = trained
    result = CliRunner().invoke(app, ["evaluate", str(ws.root), "--run", "missing"], standalone_mode=False)
    assert isinstance(result.exception, CharforgeError) and "not found" in str(result.exception)


def test_ratings_survive_a_restart_and_compare_with_the_automated_verdicts(trained, tiny_clip):
    from charforge.cli import app

    ws, prompts = trained
    api.evaluate(ws, prompts=prompts, clip=str(tiny_clip), dino="none", steps=2, show_progress=False)
    answers = "g\nf\nhands, face\nq\n"
    result = CliRunner().invoke(app, ["rate", str(ws.root), "--no-preview"], input=answers)
    assert result.exit_code == 0, result.output
    assert "rated 2" in result.output and "flaws: hands 1, face 1" in result.output
    rows = sqlite3.connect(ws.root / "ratings.sqlite").execute("select good, tags from ratings order by rated_at").fetchall()
    assert rows == [(1, ""), (0, "hands,face")]
    # a restart: the next session continues with the third picture, and the summary counts all three
    result = CliRunner().invoke(app, ["rate", str(ws.root), "--no-preview"], input="g\nq\n")
    assert "4 pictures to rate (2 rated)" in result.output and "rated 3" in result.output
    metrics = json.loads((ws.run_dir("latest") / "eval" / "metrics.json").read_text())
    # the run's newest checkpoint is rated first (good, flawed), then the one before (good); the base model last
    ratios = {p["point"]: p.get("human_ratio") for p in metrics["points"]}
    assert metrics["human"]["rated"] == 3 and ratios == {"step-000000": None, "step-000002": 1.0, "step-000004": 0.5}
    assert 0.0 <= metrics["human"]["agreement"] <= 1.0
    eval_dir = ws.run_dir("latest") / "eval"
    with RatingStore(ws.root / "ratings.sqlite") as store:
        first = next(r["file"] for r in metrics["images"] if r["step"] == 4)
        assert store.get(metrics["run"], first, eval_dir) == Rating(metrics["run"], first, True)
    # the viewer: the picture at a readable size beside a grid of the references, not a strip thousands of px wide
    with Image.open(eval_dir / "rate-view.png") as view:
        assert view.width < 1400 and view.height >= 384


def test_sweep_interrupted_after_its_first_run_continues_with_the_second(workspace, tiny_sd1, monkeypatch, tmp_path):
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(PROMPTS)
    options = dict(
        base=str(tiny_sd1),
        rank=2,
        eval_options={"prompts": prompts, "clip": "none", "dino": "none", "steps": 1},
        show_progress=False,
        **FAST,
    )
    real_train, calls = api.train, []

    def train_then_stop(*args, **kwargs):
        calls.append(kwargs["run"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(api, "train", train_then_stop)
    with pytest.raises(KeyboardInterrupt):
        sweep(workspace, learning_rates=[1e-3, 1e-4], steps=[2], **options)
    assert calls == ["sweep-lr0.001-s2", "sweep-lr0.0001-s2"]
    calls.clear()
    result = sweep(workspace, learning_rates=[1e-3, 1e-4], steps=[2], **options)
    assert calls == ["sweep-lr0.0001-s2"]  # the finished first run is not trained again
    assert [r["run"] for r in result.rows] == ["sweep-lr0.001-s2", "sweep-lr0.0001-s2"]
    assert result.winner is not None and result.report.is_file() and (result.folder / "loss.png").is_file()
    assert "Winner" in result.report.read_text()


@pytest.mark.slow
def test_mini_world_evaluation_ranks_a_late_checkpoint_above_step_0(tmp_path):
    """A DreamBooth-LoRA on the shipped mini world, scored by the judge: the late checkpoint finds more of
    the character (identity attributes, palette) than the base model and wins."""
    from charforge.evaluate.prompts import WORLD_PROMPTS
    from charforge.world import MODEL_DIR

    ws = unicorn_girl_workspace(tmp_path)
    api.train(
        ws,
        base=str(MODEL_DIR),
        method="dreambooth-lora",
        instance_prompt="a cartoon of {token} {class_word}",
        resolution=64,
        max_train_steps=300,
        learning_rate=2e-3,
        rank=8,
        train_text_encoder=True,
        checkpointing_steps=150,
        validation_steps=0,
        seed=0,
        show_progress=False,
    )
    prompts = tmp_path / "world.yaml"
    prompts.write_text(WORLD_PROMPTS.read_text().replace("seeds: [0, 1, 2, 3]", "seeds: [0, 1]"))
    metrics = api.evaluate(ws, prompts=prompts, clip="none", dino="none", steps=20, show_progress=False).metrics
    points = {p.step: p for p in metrics.points}
    assert metrics.world_character == "unicorn-girl" and metrics.thresholds["rule"].startswith("judge")
    assert metrics.best.step == 300
    assert points[300].identity_share > points[0].identity_share + 0.1
    assert points[300].palette < points[0].palette
