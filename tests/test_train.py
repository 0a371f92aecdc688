"""The training loop: it learns, its LoRA loads elsewhere, it resumes exactly, it keeps results safe."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from conftest import FAST
from PIL import Image
from safetensors.torch import load_file

from charforge import api
from charforge.errors import CharforgeError
from charforge.models.files import exported_file
from charforge.models.loading import load_base_model
from charforge.train import checkpoint as ckpt


def _denoise_error(pipe, latents: torch.Tensor, prompt: str) -> float:
    """UNet noise-prediction error on fixed noise and timesteps: the quantity training minimises."""
    gen = torch.Generator().manual_seed(123)
    timesteps = torch.linspace(50, 950, 8).long()
    x = latents.repeat(len(timesteps), 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen)
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_config(pipe.scheduler.config)
    ids = pipe.tokenizer([prompt], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = pipe.text_encoder(ids)[0].repeat(len(timesteps), 1, 1)
        pred = pipe.unet(sched.add_noise(x, noise, timesteps), timesteps, hidden).sample
    return torch.nn.functional.mse_loss(pred, noise).item()


def test_dreambooth_lora_lowers_loss_and_loads_into_fresh_pipeline(workspace, tiny_sd1):
    result = api.train(workspace, base=str(tiny_sd1), max_train_steps=80, learning_rate=5e-3, rank=8, show_progress=False, **FAST)
    final = result.final_dir
    assert (final / "pytorch_lora_weights.safetensors").is_file()
    assert (result.run_dir / "loss.csv").read_text().count("\n") == 81  # header + one row per step
    assert (result.run_dir / "loss.png").is_file()
    assert (result.run_dir / "config.yaml").is_file()

    # The loss training minimises is lower with the LoRA than without, on fixed noise/timesteps.
    from PIL import ImageOps

    from charforge.data.images import load_image, to_tensor

    base = load_base_model(str(tiny_sd1))
    pixels = to_tensor(ImageOps.fit(load_image(workspace.training_images()[0]), (32, 32)))[None]
    latents = base.pipe.vae.encode(pixels).latent_dist.mean * base.pipe.vae.config.scaling_factor
    prompt = "a picture of UnicornGirl girl"
    before = _denoise_error(base.pipe, latents, prompt)

    # A fresh pipeline loads the LoRA file as is, and it changes the output for a fixed seed.
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd1), safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(num_inference_steps=4, height=32, width=32, output_type="np")
    plain = pipe(prompt, generator=torch.Generator().manual_seed(0), **kw).images
    pipe.load_lora_weights(str(final))
    after = _denoise_error(pipe, latents, prompt)
    with_lora = pipe(prompt, generator=torch.Generator().manual_seed(0), **kw).images
    assert after < before * 0.9, (before, after)
    assert abs(plain - with_lora).mean() > 1e-3


def test_kohya_copy_has_kohya_keys_and_converts_back(workspace, tiny_sd1):
    result = api.train(
        workspace,
        base=str(tiny_sd1),
        max_train_steps=3,
        rank=4,
        lora_alpha=8,
        train_text_encoder=True,
        show_progress=False,
        **FAST,
    )
    kohya = load_file(str(exported_file(result.final_dir)))
    assert any(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in kohya)
    assert any(k.startswith("lora_te_") and k.endswith(".lora_up.weight") for k in kohya)  # kohya's SD1 prefix
    assert not any(k.startswith("lora_te1_") for k in kohya)
    alphas = [v for k, v in kohya.items() if k.endswith(".alpha")]
    assert alphas and all(float(a) == 8.0 for a in alphas)
    assert all(k.rsplit(".", 2)[0].count(".") == 0 for k in kohya)  # module path joined with "_"

    from diffusers import StableDiffusionPipeline

    ours = load_file(str(result.final_dir / "pytorch_lora_weights.safetensors"))
    back, alphas = StableDiffusionPipeline.lora_state_dict(str(exported_file(result.final_dir)))
    assert {_canonical(k): v for k, v in back.items()}.keys() == {_canonical(k) for k in ours}
    canon_back = {_canonical(k): v for k, v in back.items()}
    for key, tensor in ours.items():
        torch.testing.assert_close(canon_back[_canonical(key)], tensor)
    assert set(alphas.values()) == {8.0}


def _canonical(key: str) -> str:
    """One name per LoRA matrix across diffusers' current and legacy (kohya-converted) layouts."""
    key = key.replace(".processor.", ".").replace("lora_linear_layer.", "lora.")
    key = key.replace(".lora_A.", ".lora.down.").replace(".lora_B.", ".lora.up.")  # PEFT names
    key = re.sub(r"\.to_(q|k|v|out)_lora\.", lambda m: f".to_{m[1]}.lora.", key).replace(".to_out.lora.", ".to_out.0.lora.")
    if key.startswith("text_encoder"):
        key = re.sub(r"\.to_(q|k|v)\.", r".\1_proj.", key).replace(".to_out.0.", ".out_proj.")
    return key


def test_sdxl_lora_with_text_encoders(workspace, tiny_sdxl):
    result = api.train(workspace, base=str(tiny_sdxl), max_train_steps=3, train_text_encoder=True, show_progress=False, **FAST)
    state = load_file(str(result.final_dir / "pytorch_lora_weights.safetensors"))
    assert {k.split(".")[0] for k in state} == {"unet", "text_encoder", "text_encoder_2"}
    kohya = load_file(str(exported_file(result.final_dir)))
    assert any(k.startswith("lora_te2_") for k in kohya)
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl))
    pipe.load_lora_weights(str(result.final_dir))  # must not raise


def test_dreambooth_full_saves_a_loadable_model(workspace, tiny_sd1):
    result = api.train(
        workspace,
        base=str(tiny_sd1),
        method="dreambooth",
        max_train_steps=2,
        learning_rate=1e-4,
        save_single_file=True,
        show_progress=False,
        **FAST,
    )
    base = load_base_model(str(result.final_dir))
    single = load_base_model(str(exported_file(result.final_dir)), base_config=str(tiny_sd1))
    for a, b in zip(base.pipe.unet.parameters(), single.pipe.unet.parameters(), strict=True):
        torch.testing.assert_close(a, b.float(), rtol=0, atol=2e-3)  # the single file is fp16
    original = load_base_model(str(tiny_sd1))
    changed = any(
        not torch.equal(a, b) for a, b in zip(base.pipe.unet.parameters(), original.pipe.unet.parameters(), strict=True)
    )
    assert changed


def test_generate_from_a_dreambooth_checkpoint_uses_its_unet(workspace, tiny_sd1):
    """A DreamBooth checkpoint stores only the UNet; generating from it swaps that UNet into the base."""
    options = {**FAST, "checkpointing_steps": 1}
    api.train(
        workspace, base=str(tiny_sd1), method="dreambooth", max_train_steps=2, learning_rate=1e-2, show_progress=False, **options
    )
    kwargs = dict(seeds=[0], steps=2, width=32, height=32, show_progress=False)
    images = {
        name: np.asarray(Image.open(api.generate(workspace, ["a picture of UnicornGirl girl"], model=at, **kwargs).images[0]))
        for name, at in {"step1": api.ModelChoice(checkpoint=1), "step2": api.ModelChoice(checkpoint=2), "final": None}.items()
    }
    assert np.array_equal(images["step2"], images["final"])  # the last checkpoint is the final model
    assert not np.array_equal(images["step1"], images["final"])


def test_dreambooth_with_text_encoder_learns_the_identifier_and_checkpoints_it(workspace, tiny_sd1):
    """DreamBooth as in the paper: the text encoder trains too, so the identifier's own embedding moves; its
    checkpoints hold the encoder, generating from one uses it, and resuming continues exactly."""
    options = dict(
        base=str(tiny_sd1), method="dreambooth", train_text_encoder=True, learning_rate=1e-2, show_progress=False, **FAST
    )
    api.train(workspace, run="straight", max_train_steps=2, **{**options, "checkpointing_steps": 1})
    run = workspace.runs_dir / "straight"
    for _, folder in ckpt.list_checkpoints(run):
        assert (folder / "text_encoder" / "model.safetensors").is_file() and (folder / "unet").is_dir()

    base, final = load_base_model(str(tiny_sd1)).pipe, load_base_model(str(run / "final")).pipe
    ids = base.tokenizer("UnicornGirl", add_special_tokens=False).input_ids
    seen = set(base.tokenizer("a picture of UnicornGirl girl").input_ids) | set(base.tokenizer.all_special_ids)
    unused = sorted(set(range(len(base.tokenizer))) - seen)
    moved = (final.text_encoder.get_input_embeddings().weight - base.text_encoder.get_input_embeddings().weight).norm(dim=1)
    assert moved[ids].min() > 10 * moved[unused].max()  # the identifier learnt; words never shown only decay

    kwargs = dict(seeds=[0], steps=2, width=32, height=32, show_progress=False)
    points = {"step1": 1, "step2": 2, "final": None}
    images = {
        name: np.asarray(Image.open(api.generate(workspace, ["a picture of UnicornGirl girl"], model=at, **kwargs).images[0]))
        for name, at in {name: api.ModelChoice(run="straight", checkpoint=step) for name, step in points.items()}.items()
    }
    assert np.array_equal(images["step2"], images["final"])  # equal only if the checkpoint's text encoder is used
    assert not np.array_equal(images["step1"], images["final"])

    api.train(workspace, run="resumed", max_train_steps=1, **options)
    api.resume(workspace, run="resumed", max_train_steps=2, show_progress=False)
    resumed = load_base_model(str(workspace.runs_dir / "resumed" / "final")).pipe
    for part in ("unet", "text_encoder"):
        for a, b in zip(getattr(final, part).parameters(), getattr(resumed, part).parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_dreambooth_with_captions_trains_on_each_caption_and_needs_the_token(workspace, tiny_sd1, monkeypatch):
    """kohya-style DreamBooth: each image's caption names what is not the character (pose, background)."""
    from charforge.train import loop

    images = workspace.training_images()
    workspace.captions_dir.mkdir(exist_ok=True)
    for i, image in enumerate(images):
        (workspace.captions_dir / f"{image.stem}.txt").write_text(f"UnicornGirl girl, pose {i}")
    seen: list[list[str]] = []
    build = loop._build_data
    monkeypatch.setattr(loop, "_build_data", lambda *a, **k: seen.append(build(*a, **k).prompts) or build(*a, **k))
    api.train(workspace, base=str(tiny_sd1), captions=True, max_train_steps=1, show_progress=False, **FAST)
    assert seen[0] == [f"UnicornGirl girl, pose {i}" for i in range(len(images))]
    api.train(workspace, base=str(tiny_sd1), max_train_steps=1, show_progress=False, **FAST)  # default: the instance prompt
    assert set(seen[-1]) == {"a picture of UnicornGirl girl"}

    (workspace.captions_dir / f"{images[1].stem}.txt").write_text("a girl waving")
    with pytest.raises(CharforgeError, match=rf"{images[1].stem}.txt: the caption does not name the token 'UnicornGirl'"):
        api.train(workspace, base=str(tiny_sd1), captions=True, max_train_steps=1, show_progress=False, **FAST)


def _train_cli(ws, base, *extra):
    return [
        sys.executable,
        "-m",
        "charforge",
        "train",
        str(ws),
        "--base",
        str(base),
        "--resolution",
        "32",
        "--validation-steps",
        "0",
        "--lr-scheduler",
        "linear",
        "--learning-rate",
        "2e-3",
        "--seed",
        "3",
        *extra,
    ]


def test_ctrl_c_checkpoints_and_resume_matches_uninterrupted(workspace, tiny_sd1):
    steps = "80"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    same = ["--max-train-steps", steps, "--gradient-accumulation-steps", "2", "--checkpointing-steps", "1000"]
    full = subprocess.run(
        _train_cli(workspace.root, tiny_sd1, "--run", "full", *same), env=env, capture_output=True, text=True, timeout=600
    )
    assert full.returncode == 0, full.stderr[-2000:]

    proc = subprocess.Popen(
        _train_cli(workspace.root, tiny_sd1, "--run", "cut", *same),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    loss_csv = workspace.runs_dir / "cut" / "loss.csv"
    deadline = time.time() + 300
    while time.time() < deadline and (not loss_csv.exists() or loss_csv.read_text().count("\n") < 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "checkpoint saved" in err and "Traceback" not in err
    ((stopped_at, _),) = ckpt.list_checkpoints(workspace.runs_dir / "cut")
    assert 0 < stopped_at < int(steps)

    resumed = subprocess.run(
        [*_train_cli(workspace.root, tiny_sd1)[:5], "--run", "cut", "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = load_file(str(workspace.runs_dir / "full" / "final" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(workspace.runs_dir / "cut" / "final" / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    # Float tolerance only: CPU kernels may round differently between processes (~1e-6), while a wrong
    # resume (lost optimizer state, replayed data or noise) moves weights by about lr = 2e-3 per step.
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    rows = (workspace.runs_dir / "cut" / "loss.csv").read_text().strip().splitlines()
    assert len(rows) == int(steps) + 1  # no duplicated steps after the resume


def test_prior_preservation_generates_caches_and_reuses(workspace, tiny_sd1):
    opts = dict(
        base=str(tiny_sd1),
        max_train_steps=2,
        prior_preservation=True,
        num_class_images=3,
        class_inference_steps=2,
        show_progress=False,
        **FAST,
    )
    api.train(workspace, **opts)
    folders = [p for p in workspace.class_images_dir.iterdir() if p.is_dir()]
    assert len(folders) == 1
    images = sorted(folders[0].glob("*.png"))
    assert len(images) == 3
    info = json.loads((folders[0] / "info.json").read_text())
    assert info["prompt"] == "a picture of a girl"
    stamps = [p.stat().st_mtime_ns for p in images]
    api.train(workspace, **opts)
    assert [p.stat().st_mtime_ns for p in sorted(folders[0].glob("*.png"))] == stamps  # reused, not regenerated
    api.train(workspace, **{**opts, "class_prompt": "a picture of a boy"})
    assert len([p for p in workspace.class_images_dir.iterdir() if p.is_dir()]) == 2  # new prompt, new cache


def test_several_class_prompts_share_out_the_class_images(workspace, tiny_sd1, monkeypatch):
    """Class prompts with scenes (as the captions have) keep the prior of "a girl, side view" too."""
    from charforge.train import loop

    seen = []
    build = loop._build_data
    monkeypatch.setattr(loop, "_build_data", lambda *a, **k: seen.append(build(*a, **k)) or seen[-1])
    prompts = ["a picture of a girl, waving", "a picture of a girl, sitting"]
    api.train(
        workspace,
        base=str(tiny_sd1),
        max_train_steps=1,
        prior_preservation=True,
        class_prompt=prompts,
        num_class_images=3,
        class_inference_steps=2,
        show_progress=False,
        **FAST,
    )
    assert seen[0].class_prompts == [prompts[0], prompts[0], prompts[1]]
    assert len(seen[0].class_images) == 3
    infos = sorted(json.loads(p.read_text())["prompt"] for p in workspace.class_images_dir.glob("*/info.json"))
    assert infos == sorted(prompts)
    config = (workspace.runs_dir / "run-001" / "config.yaml").read_text()
    assert "- a picture of a girl, waving" in config  # the run records every class prompt


def test_disk_full_during_checkpoint_keeps_previous(workspace, tiny_sd1, monkeypatch):
    api.train(
        workspace,
        base=str(tiny_sd1),
        run="r",
        max_train_steps=2,
        show_progress=False,
        resolution=32,
        validation_steps=0,
        checkpointing_steps=2,
    )
    ((_, first),) = ckpt.list_checkpoints(workspace.runs_dir / "r")
    before = {p.name: p.read_bytes() for p in first.iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(CharforgeError, match="disk full while writing; the previous version is intact"):
        api.resume(workspace, run="r", max_train_steps=4, show_progress=False)
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert [s for s, _ in ckpt.list_checkpoints(workspace.runs_dir / "r")] == [2]
    leftovers = [p for p in (workspace.runs_dir / "r" / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_bucketed_images_train_on_sdxl_with_their_own_sizes(tmp_path, tiny_sdxl):
    from PIL import Image

    ws = api.init(tmp_path / "ws", token="sks", class_word="girl")
    for i, size in enumerate([(300, 600), (600, 300), (400, 400)]):
        image = Image.new("RGB", size, "white")
        image.paste((40 * i, 100, 200), (size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4))
        image.save(tmp_path / f"{i}.png")
    api.prepare(ws, [tmp_path / f"{i}.png" for i in range(3)], resolution=256, buckets=True)
    sizes = {Image.open(p).size for p in ws.training_images()}
    assert len(sizes) == 3  # tall, wide and square buckets
    with pytest.raises(CharforgeError, match="--gradient-accumulation-steps 2"):
        api.train(ws, base=str(tiny_sdxl), max_train_steps=2, train_batch_size=2, show_progress=False, **FAST)
    result = api.train(ws, base=str(tiny_sdxl), max_train_steps=4, show_progress=False, overwrite=True, run="b", **FAST)
    assert len(result.losses) == 4 and all(loss == loss for loss in result.losses)  # no NaN


def test_token_embedding_trains_only_the_identifier_travels_with_the_lora_and_resumes(workspace, tiny_sd1):
    """Pivotal tuning: the identifier's rows (UnicornGirl is several tokens here) train, no other word moves; the rows
    are saved beside the LoRA, written into the text encoder when the LoRA is applied and taken back out on restore."""
    from charforge.generate.text2image import LoraSpec, apply_loras
    from charforge.models.token_embeddings import read_token_embeddings, restore_token_embeddings, token_ids

    options = dict(base=str(tiny_sd1), learning_rate=5e-3, train_token_embedding=True, show_progress=False, **FAST)
    result = api.train(workspace, run="straight", max_train_steps=4, **options)
    token, rows = read_token_embeddings(result.final_dir)
    assert token == "UnicornGirl"

    model = load_base_model(str(tiny_sd1))
    ids = token_ids(model.pipe, "text_encoder", token)
    assert len(ids) > 1
    table = model.pipe.text_encoder.get_input_embeddings().weight
    before = table.detach().clone()
    assert rows["text_encoder"].shape == (len(ids), table.shape[1])
    assert (rows["text_encoder"] - before[ids]).abs().max() > 1e-3  # the identifier learnt

    kw = dict(num_inference_steps=3, height=32, width=32, output_type="np")
    model.pipe.set_progress_bar_config(disable=True)
    restore = apply_loras(model, [LoraSpec(result.final_dir)])
    moved = (table.detach() - before).abs().sum(dim=1).nonzero().flatten().tolist()
    assert moved == sorted(set(ids))  # exactly the identifier's rows, as trained
    torch.testing.assert_close(table.detach()[ids], rows["text_encoder"])
    with_rows = model.pipe("a picture of UnicornGirl girl", generator=torch.Generator().manual_seed(0), **kw).images
    restore_token_embeddings(restore)
    assert torch.equal(table.detach(), before)
    without_rows = model.pipe("a picture of UnicornGirl girl", generator=torch.Generator().manual_seed(0), **kw).images
    assert abs(with_rows - without_rows).mean() > 1e-4

    # The kohya copy bundles the rows (A1111 / ComfyUI keys) and, loaded alone, draws what the folder draws.
    kohya_file = exported_file(result.final_dir)
    bundled = load_file(str(kohya_file))
    torch.testing.assert_close(bundled["bundle_emb.UnicornGirl.string_to_param.*"], rows["text_encoder"])
    model.pipe.unload_lora_weights()
    restore = apply_loras(model, [LoraSpec(kohya_file)])
    torch.testing.assert_close(table.detach()[ids], rows["text_encoder"])
    from_kohya = model.pipe("a picture of UnicornGirl girl", generator=torch.Generator().manual_seed(0), **kw).images
    assert abs(from_kohya - with_rows).max() < 1e-3
    restore_token_embeddings(restore)

    # Resume restores the rows (and their optimizer state) from the checkpoint: 2 + 2 steps equal 4 straight.
    api.train(workspace, run="resumed", max_train_steps=2, **options)
    api.resume(workspace, run="resumed", max_train_steps=4, show_progress=False)
    _, resumed = read_token_embeddings(workspace.runs_dir / "resumed" / "final")
    torch.testing.assert_close(resumed["text_encoder"], rows["text_encoder"], rtol=1e-4, atol=1e-5)


def test_token_embedding_is_refused_for_full_dreambooth(workspace, tiny_sd1):
    with pytest.raises(CharforgeError, match="train_token_embedding is for the LoRA methods"):
        api.train(workspace, base=str(tiny_sd1), method="dreambooth", train_token_embedding=True, show_progress=False, **FAST)


def test_masked_loss_weights_the_subject_and_leaves_a_busy_background_whole(workspace, tiny_sd1, tmp_path):
    """--masked-loss: on drawings on white, the loss is the subject's; where no background is flat the mask would
    be a guess, so those pictures train exactly as without it."""
    from charforge.train.data_cache import loss_weights

    images = workspace.training_images()
    weights = loss_weights(images, 32, 8, 2, unmasked=0.25)
    for w in weights:
        assert w.shape == (1, 16, 16) and w.min() == 0.25 and w.max() == 1.0
        assert 0.1 < (w == 1).float().mean() < 0.9  # the figure, not the white around it
    common = dict(base=str(tiny_sd1), max_train_steps=2, show_progress=False, **FAST)
    plain = api.train(workspace, run="plain", **common).losses
    masked = api.train(workspace, run="masked", masked_loss=True, **common).losses
    assert plain != masked

    rng = np.random.default_rng(0)
    busy = tmp_path / "busy"
    busy.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(busy / f"noise-{i}.png")
    ws = api.init(tmp_path / "busy-ws", token="UnicornGirl", class_word="girl")
    api.prepare(ws, [busy])
    assert all(bool((w == 1).all()) for w in loss_weights(ws.training_images(), 32, 8, 2))
    assert api.train(ws, run="plain", **common).losses == api.train(ws, run="masked", masked_loss=True, **common).losses


def test_eval_every_scores_the_run_and_a_plateau_stops_it_with_the_best_checkpoint_final(tmp_path, tiny_sd1):
    """A run whose weights barely move scores the same at every evaluation: none beats the first, so after
    --stop-when-plateau 2 more evaluations it stops, and the first scored checkpoint becomes final/."""
    from conftest import unicorn_girl_workspace

    ws = unicorn_girl_workspace(tmp_path)  # a mini-world character: the judge scores it, no download
    options = dict(FAST, resolution=64, checkpointing_steps=1000, eval_inference_steps=2, eval_prompts_count=3)
    result = api.train(
        ws, base=str(tiny_sd1), max_train_steps=40, learning_rate=1e-12, eval_every=2, stop_when_plateau=2,
        show_progress=False, **options,
    )  # fmt: skip
    assert result.steps == 6  # evaluated at 2, 4, 6; 4 and 6 did not beat 2
    watched = json.loads((result.run_dir / "watch.json").read_text())["evaluations"]
    assert [e["step"] for e in watched] == [2, 4, 6] and [e["improved"] for e in watched] == [True, False, False]
    assert all(e["images"] == 3 and e.get("identity_share") is not None and "score" in e for e in watched)
    summary = json.loads((result.run_dir / "run.json").read_text())
    assert summary["watch"] == {"best_step": 2, "stopped_at_plateau": True} and summary["promoted"] == 2
    assert (result.run_dir / "final-before-promote").is_dir() and (result.run_dir / "loss.png").is_file()
    assert [s for s, _ in ckpt.list_checkpoints(result.run_dir)] == [2, 4, 6]


def test_scores_while_training_equal_charforge_evaluate_of_the_same_checkpoints(tmp_path):
    """The watch draws evaluate's prompts with evaluate's sampler, so each scored step reads as `evaluate` reads it
    (on the mini world's trained base, whose pictures the judge reads differently when the sampler differs)."""
    from conftest import unicorn_girl_workspace

    from charforge.evaluate.prompts import WORLD_PROMPTS
    from charforge.world import MODEL_DIR

    ws = unicorn_girl_workspace(tmp_path)
    options = dict(FAST, resolution=64, checkpointing_steps=2, eval_inference_steps=8, eval_prompts_count=2, eval_seeds_count=2)
    result = api.train(
        ws, base=str(MODEL_DIR), max_train_steps=4, learning_rate=1e-3, eval_every=2, mixed_precision="no",
        show_progress=False, **options,
    )  # fmt: skip
    watched = {e["step"]: e for e in json.loads((result.run_dir / "watch.json").read_text())["evaluations"]}
    spec = yaml.safe_load(WORLD_PROMPTS.read_text())
    spec.update(seeds=spec["seeds"][:2], prompts=spec["prompts"][:2])  # what the watch draws: 2 prompts, the first 2 seeds
    prompts = tmp_path / "watched.yaml"
    prompts.write_text(yaml.safe_dump(spec))
    metrics = api.evaluate(ws, prompts=prompts, clip="none", dino="none", steps=8, halving=False, show_progress=False).metrics
    columns = ("identity", "identity_share", "fidelity", "quality_ratio")
    for step in (2, 4):
        point = next(p for p in metrics.points if p.step == step)
        assert point.images == watched[step]["images"] == 4
        assert {k: point.value(k) for k in columns} == {k: watched[step].get(k) for k in columns}, step


def test_plateau_and_eval_settings_are_checked(workspace, tiny_sd1):
    with pytest.raises(CharforgeError, match="stop_when_plateau needs eval_every"):
        api.train(workspace, base=str(tiny_sd1), stop_when_plateau=3, show_progress=False, **FAST)
    with pytest.raises(CharforgeError, match="checkpoints_total_limit"):
        api.train(workspace, base=str(tiny_sd1), eval_every=2, checkpoints_total_limit=1, show_progress=False, **FAST)
    with pytest.raises(CharforgeError, match="--eval-every needs something to score with"):
        api.train(workspace, base=str(tiny_sd1), eval_every=2, show_progress=False, **FAST)  # offline, not a world character
