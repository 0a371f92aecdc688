"""The mini world: renderer, grammar, tokenizer, judge, scores and the shipped base model."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from conftest import run_cli

from charforge.errors import CharforgeError
from charforge.world import JUDGE_FILE, MODEL_DIR
from charforge.world.attributes import (
    CHARACTER_VALUES,
    EXPRESSIONS,
    HELD_OUT,
    HELD_OUT_KEYS,
    POSES,
    REFERENCE_SCENES,
    Character,
    Scene,
    caption,
    identity_key,
    partial_caption,
    random_scene,
    training_character,
)
from charforge.world.render import render


def test_render_is_deterministic_and_seeded():
    c, s = HELD_OUT["unicorn-girl"], Scene("waving", "sad", "teal forest")
    a, b = np.asarray(render(c, s, 64, seed=3)), np.asarray(render(c, s, 64, seed=3))
    assert a.shape == (64, 64, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(render(c, s, 64, seed=4)))


def test_every_pose_and_expression_draws_something_different():
    c = HELD_OUT["unicorn-girl"]
    poses = [np.asarray(render(c, Scene(p), 64, seed=0)).astype(int) for p in POSES]
    for i in range(len(poses)):
        for j in range(i + 1, len(poses)):
            assert np.abs(poses[i] - poses[j]).mean() > 1.0, (POSES[i], POSES[j])
    faces = [np.asarray(render(c, Scene("portrait", e), 64, seed=0)).astype(int) for e in EXPRESSIONS]
    for i in range(len(faces)):
        for j in range(i + 1, len(faces)):
            assert np.abs(faces[i] - faces[j]).max() > 60, (EXPRESSIONS[i], EXPRESSIONS[j])


def test_world_has_thousands_of_characters_and_held_out_ones_never_train():
    assert math.prod(len(v) for v in CHARACTER_VALUES.values()) >= 5000
    rng = random.Random(0)
    assert all(identity_key(training_character(rng)) not in HELD_OUT_KEYS for _ in range(5000))
    assert len(REFERENCE_SCENES) == 6 and sum(s.pose in ("standing", "portrait") for s in REFERENCE_SCENES) == 3


def test_captions_follow_the_grammar():
    c = HELD_OUT["unicorn-girl"]
    text = caption(c, Scene("arms up", "smiling", "white"))
    assert text == (
        "a cartoon of a girl with short pink hair and light skin in a blue onesie with a unicorn horn, "
        "arms up, smiling, white background"
    )
    assert "smiling" not in caption(c, Scene("back view", "smiling"))  # the face is not seen
    rng = random.Random(1)
    partial = [partial_caption(c, Scene(), rng) for _ in range(50)]
    assert all(p.startswith("a cartoon of a girl") for p in partial) and len(set(partial)) > 20


def test_unknown_attributes_list_the_valid_ones(tmp_path, capsys):
    with pytest.raises(CharforgeError, match="valid values: black, brown"):
        Character.from_dict({"hair_colour": "teal"})
    with pytest.raises(CharforgeError, match="valid attributes: hair_colour"):
        Character.from_dict({"hat": "red"})
    spec = tmp_path / "spec.yaml"
    spec.write_text("character: {hair_colour: pink}\nscenes:\n  - {pose: flying}\n")
    code, _, err = run_cli("world", "render", tmp_path / "out", "--spec", spec, capsys=capsys)
    assert code == 2 and "spec.yaml" in err and "valid values: standing, arms up" in err


def test_spec_renders_pictures_with_captions(tmp_path, capsys):
    spec = tmp_path / "hero.yaml"
    spec.write_text("character: {hair-colour: green, accessory: crown}\nscenes:\n  - {pose: jumping, background: blue sky}\n")
    code, out, err = run_cli("world", "render", tmp_path / "out", "--spec", spec, "--size", "64", capsys=capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "hero-0-jumping.txt").read_text().startswith("a cartoon of a girl with short green hair")


def test_tokenizer_keeps_grammar_words_and_rare_identifiers_whole():
    from transformers import CLIPTokenizer

    from charforge.world.tokenizer import RARE_TOKENS, vocabulary_words

    tokenizer = CLIPTokenizer.from_pretrained(MODEL_DIR / "tokenizer")
    for word in [*vocabulary_words(), *RARE_TOKENS]:
        assert len(tokenizer.tokenize(word)) == 1, word
    longest = caption(
        Character("purple", "pigtails", "yellow", "jacket and trousers", "unicorn horn", "light"), Scene("looking back")
    )
    assert len(tokenizer(longest).input_ids) < tokenizer.model_max_length


# -- judge and scores -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def judge():
    from charforge.world.judge import Judge

    return Judge.load()


def _renders(count: int, seed: int):
    rng = random.Random(seed)
    items = [(training_character(rng), random_scene(rng)) for _ in range(count)]
    return items, [render(c, s, 64, seed=rng.randrange(1000)) for c, s in items]


def test_judge_reads_fresh_renders(judge):
    from charforge.world.score import score

    items, images = _renders(150, seed=777)
    asked = [{**c.to_dict(), **s.to_dict()} for c, s in items]
    result = score(images, asked, judge=judge)
    for name in ("hair_colour", "outfit_colour", "accessory", "pose", "background"):
        assert result.per_attribute[name] >= 0.95, (name, result.per_attribute)
    assert result.prompt_fidelity >= 0.95


def test_identity_and_palette_scores_tell_characters_apart(judge):
    from charforge.world.score import palette_distance, score

    target, other = HELD_OUT["unicorn-girl"], HELD_OUT["explorer"]
    scenes = [Scene("arms up", "sad"), Scene("waving", "surprised"), Scene("sitting", "angry"), Scene("standing", "smiling")]
    own = [render(target, s, 64, seed=i) for i, s in enumerate(scenes)]
    theirs = [render(other, s, 64, seed=i) for i, s in enumerate(scenes)]
    refs = [render(target, s, 64, seed=100 + i) for i, s in enumerate(REFERENCE_SCENES)]
    asked = [s.to_dict() for s in scenes]
    mine = score(own, asked, character=target, judge=judge)
    assert mine.identity >= 0.75 and 0.5 <= mine.quality_ratio <= mine.identity
    assert score(theirs, asked, character=target, judge=judge).identity == 0.0
    assert score(theirs, asked, character=target, judge=judge).quality_ratio == 0.0
    # the quality ratio also needs what was asked: the same pictures asked for other poses are not flawless
    other_poses = [{**a, "pose": "jumping" if a["pose"] != "jumping" else "sitting"} for a in asked]
    assert score(own, other_poses, character=target, judge=judge).quality_ratio == 0.0
    assert palette_distance(own, refs) < palette_distance(theirs, refs)


def test_without_a_target_identity_is_read_against_each_prompts_full_description(judge):
    """The base model's ceiling: each picture is checked against the character its prompt spells out."""
    from charforge.world.score import score

    people = [HELD_OUT["unicorn-girl"], HELD_OUT["explorer"]] * 2
    scenes = [Scene("arms up", "sad"), Scene("waving", "surprised"), Scene("sitting", "angry"), Scene("standing", "smiling")]
    images = [render(c, s, 64, seed=i) for i, (c, s) in enumerate(zip(people, scenes, strict=True))]
    described = [{**c.to_dict(), **s.to_dict()} for c, s in zip(people, scenes, strict=True)]
    swapped = [{**c.to_dict(), **s.to_dict()} for c, s in zip(people[1:] + people[:1], scenes, strict=True)]
    result = score(images, described, judge=judge)
    assert result.identity >= 0.75 and result.identity_attributes["hair_colour"] >= 0.75
    assert score(images, swapped, judge=judge).identity == 0.0
    assert score(images, [s.to_dict() for s in scenes], judge=judge).identity is None  # nothing to check it against


def test_missing_or_corrupt_judge_names_the_file(tmp_path):
    from charforge.world.judge import Judge

    with pytest.raises(CharforgeError, match=r"judge.safetensors: .*missing; rebuild it with `charforge world build`"):
        Judge.load(tmp_path / "judge.safetensors")
    bad = tmp_path / "judge.safetensors"
    bad.write_bytes(JUDGE_FILE.read_bytes()[:5000])
    with pytest.raises(CharforgeError, match="unreadable.*charforge world build"):
        Judge.load(bad)


# -- the shipped base model -----------------------------------------------------------------------------
def test_shipped_model_is_small_sd1_and_draws_what_it_is_asked():
    import torch

    from charforge.models.family import ModelFamily
    from charforge.models.loading import load_base_model

    size = sum(p.stat().st_size for p in MODEL_DIR.rglob("*.safetensors")) + JUDGE_FILE.stat().st_size
    assert size < 30 * 2**20
    model = load_base_model(str(MODEL_DIR))
    assert model.family is ModelFamily.SD1
    image = model.pipe(
        "a cartoon of a girl with long red hair in a green dress, standing, smiling, white background",
        num_inference_steps=20,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 64)
    arr = np.asarray(image).astype(int)
    assert arr.std() > 20  # a picture, not noise or a flat field


def test_missing_base_model_says_how_to_rebuild(tmp_path):
    from charforge.recipes.world_experiment import check_model

    with pytest.raises(CharforgeError, match="rebuild it with `charforge world build`"):
        check_model(tmp_path / "model")


def test_build_runs_end_to_end_at_toy_size(tmp_path):
    """The build command's code path (render, VAE, latents, UNet + text encoder, decoder, save) at a few steps."""
    from diffusers import AutoencoderKL

    from charforge.models.loading import load_base_model
    from charforge.world.build import BuildConfig, build_base_model

    config = BuildConfig(images=32, vae_steps=2, vae_batch=4, unet_steps=3, unet_batch=4, warmup=1, checkpoint_every=2)
    config.decoder_steps, config.decoder_batch = 3, 4
    out = build_base_model(tmp_path / "model", tmp_path / "work", config, progress=lambda it, label, **kw: it)
    assert load_base_model(str(out)).pipe.tokenizer.model_max_length == 64
    assert (tmp_path / "work" / "unet-state" / "state.json").exists()
    # The decoder trained on; the encoder is the one the UNet's latents came from, untouched.
    first, shipped = AutoencoderKL.from_pretrained(tmp_path / "work" / "vae"), AutoencoderKL.from_pretrained(out / "vae")
    assert torch.equal(first.encoder.conv_in.weight, shipped.encoder.conv_in.weight)
    assert torch.equal(first.quant_conv.weight, shipped.quant_conv.weight)
    assert not torch.equal(first.decoder.conv_out.weight, shipped.decoder.conv_out.weight)
    assert json.loads((tmp_path / "work" / "decoder-state" / "state.json").read_text())["step"] == 3


def test_decoder_stage_resumes_where_it_stopped(tmp_path):
    """4 decoder steps stopped after step 2 (a crash), then resumed from work/decoder-state == 4 steps straight."""
    from charforge.world.build import BuildConfig, encode_set, finetune_decoder, make_vae

    pixels = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    config = BuildConfig(decoder_steps=4, decoder_batch=2, checkpoint_every=2)

    def crash_after_two(iterable, label, **kw):
        for i, item in enumerate(iterable):
            if i == 2:
                raise KeyboardInterrupt
            yield item

    def decoder_after(work, progress=lambda it, label, **kw: it) -> tuple[dict, dict]:
        torch.manual_seed(0)
        vae = make_vae()
        untrained = {k: v.clone() for k, v in vae.decoder.state_dict().items()}
        finetune_decoder(vae, pixels, encode_set(vae, pixels), work, config, progress=progress)
        return untrained, {k: v.clone() for k, v in vae.decoder.state_dict().items()}

    untrained, straight = decoder_after(tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        decoder_after(tmp_path / "resumed", crash_after_two)
    assert json.loads((tmp_path / "resumed" / "decoder-state" / "state.json").read_text())["step"] == 2
    _, resumed = decoder_after(tmp_path / "resumed")
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)
    assert not all(torch.equal(straight[k], untrained[k]) for k in straight)


def test_world_captioner_names_the_scene_and_leaves_the_character_to_the_token(tmp_path):
    from conftest import unicorn_girl_workspace

    from charforge import api
    from charforge.world.attributes import scene_prompt

    ws = unicorn_girl_workspace(tmp_path)
    report = api.caption(ws, captioner="world")
    expected = {f"ref-{i}.png": scene_prompt("a cartoon of sks girl", s) for i, s in enumerate(REFERENCE_SCENES)}
    assert report.written == expected
    assert "pink" not in " ".join(report.written.values())  # identity words are the token's job
