"""Outfits, edits and poses: masks (files, palette colours), inpainting and restyling with the taught character,
IP-Adapter image prompts and ControlNet poses, on tiny models built from configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FAST, run_cli
from PIL import Image, ImageDraw

from charforge import api
from charforge.errors import CharforgeError
from charforge.generate import masks
from charforge.generate.metadata import read_png_params
from charforge.generate.pose import COLOURS, KEYPOINTS, draw_skeleton, load_pose
from charforge.models.tiny import save_tiny_controlnet, save_tiny_grounded_sam, save_tiny_ip_adapter

DRAW = dict(steps=3, guidance=5.0, seed=3, sampler="euler")


def flat_picture(size=(48, 48)) -> Image.Image:
    """A flat-coloured 'character': a pink dress (rectangle 12..36 x 20..44) on white, anti-aliased edges."""
    big = Image.new("RGB", (size[0] * 4, size[1] * 4), "white")
    ImageDraw.Draw(big).rectangle((12 * 4, 20 * 4, 36 * 4 - 1, 44 * 4 - 1), fill=(208, 74, 111))
    ImageDraw.Draw(big).ellipse((16 * 4, 2 * 4, 32 * 4, 18 * 4), fill=(240, 200, 170))
    return big.resize(size, Image.Resampling.LANCZOS)


def test_colour_mask_recovers_a_known_region_within_a_pixel():
    found = np.asarray(masks.colour_mask(flat_picture(), (208, 74, 111))) > 127
    truth = np.zeros((48, 48), bool)
    truth[20:44, 12:36] = True
    assert (found ^ truth).sum() <= 2 * (24 + 24)  # at most the one-pixel anti-aliased rim differs
    assert found[22:42, 14:34].all() and not found[:18].any()


def test_colour_mask_from_the_workspace_palette(workspace, tmp_path, capsys):
    api.stats(workspace)
    picture = workspace.training_images()[0]
    code, out, err = run_cli(
        "mask", picture, "--by-colour", "1", "--workspace", workspace.root, "-o", tmp_path / "m.png", capsys=capsys
    )
    assert code == 0, err
    made = Image.open(tmp_path / "m.png")
    assert made.mode == "L" and made.size == Image.open(picture).size
    assert 0.0 < masks.share(made) < 1.0 and "mask covers" in out
    assert (tmp_path / "m-preview.png").is_file()
    code, _, err = run_cli("mask", picture, "--by-colour", "99", "--workspace", workspace.root, capsys=capsys)
    assert code == 2 and "has colours 1 to" in err and "Traceback" not in err


def test_a_mask_covering_everything_is_a_warning_naming_the_share(tmp_path, capsys):
    """The outfit project's bug: its mask covered the whole picture and nobody noticed."""
    flat_picture().save(tmp_path / "p.png")
    code, out, err = run_cli(
        "mask", tmp_path / "p.png", "--by-colour", "#ffffff", "--tolerance", "200", "-o", tmp_path / "m.png", capsys=capsys
    )
    assert code == 0 and "warning: mask m.png covers 100.0% of the picture" in err
    assert masks.share_warning(Image.new("L", (8, 8), 0)) == "mask covers 0.0% of the picture: almost nothing would be redrawn"
    assert masks.share_warning(masks.colour_mask(flat_picture(), (208, 74, 111))) is None


def test_mask_files_are_converted_resized_or_refused_with_their_sizes(tmp_path):
    Image.new("RGB", (24, 24), "white").save(tmp_path / "rgb.png")
    loaded = masks.load_mask(tmp_path / "rgb.png", (48, 48))
    assert loaded.mask.mode == "L" and loaded.mask.size == (48, 48)
    assert any("read as a mask from its brightness" in n for n in loaded.notes)
    assert any("resized from 24x24 to 48x48" in n for n in loaded.notes)
    Image.new("L", (30, 20)).save(tmp_path / "wide.png")
    with pytest.raises(CharforgeError, match=r"--mask .*wide.png: the mask is 30x20 but the picture is 48x48"):
        masks.load_mask(tmp_path / "wide.png", (48, 48))
    with pytest.raises(CharforgeError, match="file not found"):
        masks.load_mask(tmp_path / "none.png", (48, 48))
    (tmp_path / "bad.png").write_text("not a picture")
    with pytest.raises(CharforgeError, match="bad.png: not a readable image"):
        masks.load_mask(tmp_path / "bad.png", (48, 48))


def test_keypoint_json_draws_the_openpose_skeleton(tmp_path):
    points = {"nose": [0.5, 0.2], "neck": [0.5, 0.35], "right_shoulder": [0.3, 0.35], "left_shoulder": [0.7, 0.35]}
    (tmp_path / "pose.json").write_text(json.dumps({"width": 128, "height": 128, "keypoints": points}))
    skeleton = np.asarray(load_pose(tmp_path / "pose.json"), dtype=int)
    assert skeleton.shape == (128, 128, 3)
    # neck -> right shoulder is the first limb: red at 60 % over black, halfway between the joints
    assert tuple(skeleton[45, 51]) == (153, 0, 0)
    assert tuple(skeleton[int(0.2 * 128), 64]) == COLOURS[KEYPOINTS.index("nose")]  # the nose joint's own colour
    assert skeleton[120, 10].sum() == 0  # black elsewhere
    openpose = [0.0] * 54
    for name, (x, y) in points.items():
        k = KEYPOINTS.index(name)
        openpose[3 * k : 3 * k + 3] = [x * 128, y * 128, 1.0]
    (tmp_path / "op.json").write_text(
        json.dumps({"canvas_width": 128, "canvas_height": 128, "people": [{"pose_keypoints_2d": openpose}]})
    )
    assert np.array_equal(np.asarray(load_pose(tmp_path / "op.json"), dtype=int), skeleton)
    (tmp_path / "bad.json").write_text(json.dumps({"keypoints": {"tail": [1, 2]}}))
    with pytest.raises(CharforgeError, match="unknown keypoint 'tail'"):
        load_pose(tmp_path / "bad.json")
    assert draw_skeleton((16, 16), [[None] * 18]).getextrema() == ((0, 0),) * 3


@pytest.fixture(scope="module")
def taught(tmp_path_factory, drawings, tiny_sd1):
    """A workspace with a tiny LoRA run (and its identifier embedding), and a picture of the character to edit."""
    ws = api.init(tmp_path_factory.mktemp("ws") / "unicorn", token="UnicornGirl", class_word="girl")
    api.prepare(ws, [drawings])
    api.train(
        ws, base=str(tiny_sd1), max_train_steps=2, learning_rate=1e-2, train_token_embedding=True, show_progress=False, **FAST
    )
    return ws


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_inpainting_with_the_lora_changes_only_the_masked_region(taught, tmp_path):
    flat_picture((32, 32)).save(tmp_path / "in.png")
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((8, 12, 23, 27), fill=255)
    mask.save(tmp_path / "mask.png")
    result = api.edit(
        taught,
        tmp_path / "in.png",
        ["UnicornGirl girl in a red raincoat"],
        mask=tmp_path / "mask.png",
        out_dir=tmp_path / "out",
        **DRAW,
    )
    edited, original = _pixels(result.images[0]), _pixels(tmp_path / "in.png")
    inside = np.asarray(mask) == 255
    assert np.abs(edited - original)[~inside].max() == 0  # outside: the input's pixels
    assert np.abs(edited - original)[inside].mean() > 10  # inside: redrawn
    params = read_png_params(result.images[0])
    assert params.extra["Denoising strength"] == "1" and params.extra["Mask"].endswith("mask.png")
    assert params.loras and params.loras[0][1] == 1.0  # drawn with the run's LoRA
    # without pasting back, the latent pass changes the outside a little: the option is what keeps it
    loose = api.edit(
        taught,
        tmp_path / "in.png",
        ["UnicornGirl girl"],
        mask=tmp_path / "mask.png",
        keep_original=False,
        out_dir=tmp_path / "o2",
        **DRAW,
    )
    assert np.abs(_pixels(loose.images[0]) - original)[~inside].max() > 0


def test_restyle_redraws_the_whole_picture_and_strength_decides_how_much(tmp_path):
    """On the mini world's trained model: a tiny random VAE's round trip alone would change every pixel."""
    flat_picture((64, 64)).save(tmp_path / "in.png")
    original = _pixels(tmp_path / "in.png")
    draw = {
        **DRAW,
        "steps": 10,
        "model": api.ModelChoice("world"),
        "show_progress": False,
    }  # diffusers runs int(steps * strength): 2 at 0.2
    change = {}
    for strength in (0.2, 1.0):
        result = api.edit(None, tmp_path / "in.png", ["a girl"], strength=strength, out_dir=tmp_path / f"s{strength}", **draw)
        change[strength] = np.abs(_pixels(result.images[0]) - original).mean()
    assert 0 < change[0.2] < change[1.0] * 0.7  # measured 11 against 28
    assert read_png_params(result.images[0]).extra["Denoising strength"] == "1"
    with pytest.raises(CharforgeError, match=r"--strength 0.2 with --steps 3 leaves no step to draw; use --steps 5"):
        api.edit(None, tmp_path / "in.png", ["a girl"], strength=0.2, out_dir=tmp_path / "c", **{**draw, "steps": 3})


def test_a_pose_through_a_tiny_controlnet_changes_the_picture(taught, tiny_sd1, tmp_path):
    net = save_tiny_controlnet(tmp_path / "controlnet", tiny_sd1)
    (tmp_path / "pose.json").write_text(
        json.dumps({"keypoints": {"nose": [0.5, 0.2], "neck": [0.5, 0.4], "right_hip": [0.4, 0.8]}})
    )
    plain = api.generate(taught, ["UnicornGirl girl waving"], out_dir=tmp_path / "plain", width=32, height=32, **DRAW)
    posed = api.generate(
        taught,
        ["UnicornGirl girl waving"],
        out_dir=tmp_path / "posed",
        width=32,
        height=32,
        conditions=build(pose=tmp_path / "pose.json", controlnet=str(net), control_scale=1.0),
        **DRAW,
    )
    assert np.abs(_pixels(posed.images[0]) - _pixels(plain.images[0])).mean() > 1
    params = read_png_params(posed.images[0])
    assert str(net) in params.extra["ControlNet 0"] and "Weight: 1" in params.extra["ControlNet 0"]
    assert params.loras  # with the character's LoRA


def test_an_image_prompt_through_a_tiny_ip_adapter_changes_the_picture_and_can_be_masked(taught, tiny_sd1, tmp_path):
    adapter = save_tiny_ip_adapter(tmp_path / "ip", tiny_sd1)
    outfit = tmp_path / "outfit.png"
    Image.new("RGB", (40, 40), (20, 160, 60)).save(outfit)
    common = dict(width=32, height=32, **DRAW)
    plain = api.generate(taught, ["UnicornGirl girl"], out_dir=tmp_path / "plain", **common)
    prompted = api.generate(
        taught,
        ["UnicornGirl girl"],
        out_dir=tmp_path / "ip1",
        conditions=build(image_prompt=outfit, ip_adapter=str(adapter), ip_scale_value=1.0),
        **common,
    )
    assert np.abs(_pixels(prompted.images[0]) - _pixels(plain.images[0])).mean() > 1
    params = read_png_params(prompted.images[0])
    assert params.extra["IP-Adapter"] == str(adapter) and params.extra["IP-Adapter scale"] == "1"
    Image.new("L", (40, 40), 0).save(tmp_path / "nowhere.png")
    masked = api.generate(
        taught,
        ["UnicornGirl girl"],
        out_dir=tmp_path / "ip2",
        conditions=build(image_prompt=outfit, ip_adapter=str(adapter), ip_scale_value=1.0, ip_mask=tmp_path / "nowhere.png"),
        **common,
    )
    # an image prompt masked out everywhere acts nowhere: the picture is the plain one
    assert np.abs(_pixels(masked.images[0]) - _pixels(plain.images[0])).mean() < 1
    # a preset of per-block scales runs and is recorded
    preset = api.generate(
        taught,
        ["UnicornGirl girl"],
        out_dir=tmp_path / "ip3",
        conditions=build(image_prompt=outfit, ip_adapter=str(adapter), ip_preset="outfit"),
        **common,
    )
    assert '"up":{"block_0":[0.0,0.85]}' in read_png_params(preset.images[0]).extra["IP-Adapter scale"]
    # and the base is itself again without it
    again = api.generate(taught, ["UnicornGirl girl"], out_dir=tmp_path / "plain2", **common)
    assert np.array_equal(_pixels(again.images[0]), _pixels(plain.images[0]))


def build(**options):
    from charforge.generate.conditions import build_conditions

    return build_conditions(**options)


def test_adapters_of_another_family_and_pickles_are_clear_errors(tiny_sd1, tiny_sdxl, tmp_path, capsys):
    def generate(*options) -> str:
        code, _, err = run_cli(
            "generate", "--base", tiny_sd1, "x", "--steps", "1", "--out", tmp_path / "o", *options, capsys=capsys
        )
        assert code == 2 and "Traceback" not in err
        return err

    sdxl_adapter = save_tiny_ip_adapter(tmp_path / "ipxl", tiny_sdxl)
    Image.new("RGB", (32, 32), "green").save(tmp_path / "o.png")
    prompt = ("--image-prompt", tmp_path / "o.png")
    assert "made for a model with text width 64, but this base has 32" in generate(*prompt, "--ip-adapter", sdxl_adapter)
    (tmp_path / "ipxl" / "ip-adapter.bin").write_bytes(b"pickle")
    err = generate(*prompt, "--ip-adapter", tmp_path / "ipxl" / "ip-adapter.bin")
    assert "pickles" in err and "ip-adapter.safetensors exist beside it" in err
    net = save_tiny_controlnet(tmp_path / "cnxl", tiny_sdxl)
    Image.new("RGB", (32, 32)).save(tmp_path / "pose.png")
    assert "made for a SDXL model" in generate("--pose", tmp_path / "pose.png", "--controlnet", net)
    assert "--ip-preset funky: unknown" in generate(*prompt, "--ip-preset", "funky")
    assert "not both" in generate(*prompt, "--ip-preset", "style", "--ip-scale", "0.5")
    code, _, err = run_cli("mask", tmp_path / "o.png", "  ", capsys=capsys)
    assert code == 2 and "empty" in err


def test_edit_from_the_cli_with_a_palette_mask(taught, tmp_path, capsys):
    api.stats(taught)
    picture = tmp_path / "small.png"  # a training picture at the tiny model's size: attention at 512 px takes minutes
    Image.open(taught.training_images()[0]).convert("RGB").resize((32, 32)).save(picture)
    code, out, err = run_cli(
        "edit",
        taught.root,
        picture,
        "UnicornGirl girl in a red raincoat",
        "--by-colour",
        "1",
        "--steps",
        "2",
        "--out",
        tmp_path / "e",
        capsys=capsys,
    )
    assert code == 0, err
    assert list((tmp_path / "e").glob("*.png"))
    code, _, err = run_cli("edit", taught.root, picture, "x", capsys=capsys)
    assert code == 2 and "give a mask" in err
    code, _, err = run_cli("edit", taught.root, tmp_path / "missing.png", "x", "--restyle", capsys=capsys)
    assert code == 2 and "missing.png: file not found" in err


def test_masks_from_words_run_grounding_dino_and_sam_end_to_end(tmp_path, capsys):
    """Tiny random models: the real load -> detect -> box prompts -> masks path; thresholds decide what is kept."""
    detector, segmenter = save_tiny_grounded_sam(tmp_path / "models")
    flat_picture().save(tmp_path / "p.png")
    models = ["--model", "grounding-dino+sam", "--model-path", str(detector), "--model-path", str(segmenter)]
    shares = {}
    for threshold in ("0.01", "0.99"):
        out = tmp_path / f"m{threshold}.png"
        code, _, err = run_cli("mask", tmp_path / "p.png", "clothing", *models, "--box-threshold", "0",
                               "--mask-threshold", threshold, "-o", out, capsys=capsys)  # fmt: skip
        assert code == 0, err
        made = Image.open(out)
        assert made.mode == "L" and made.size == (48, 48)
        shares[threshold] = masks.share(made)
    assert shares["0.01"] > shares["0.99"]
    # no detection above the threshold: an empty mask, and the warning says so
    code, _, err = run_cli(
        "mask", tmp_path / "p.png", "clothing", *models, "--box-threshold", "1.0", "-o", tmp_path / "none.png", capsys=capsys
    )
    assert code == 0 and "covers 0.0% of the picture" in err
    code, _, err = run_cli(
        "mask", tmp_path / "p.png", "clothing", "--model", "grounding-dino+sam", "--model-path", str(detector), capsys=capsys
    )
    assert code == 2 and "takes 2 model folder(s)" in err
    from charforge.generate.segment import has_torchvision

    if not has_torchvision():
        code, _, err = run_cli("mask", tmp_path / "p.png", "clothing", "--model", "sam3", capsys=capsys)
        assert code == 2 and "needs torchvision" in err and "Traceback" not in err


def test_comic_panels_edit_inside_a_mask_and_take_an_image_prompt(tmp_path, capsys):
    """A storyboard's `edit:` and `image_prompt:` draw through the same conditions, cached by their files' contents."""
    from charforge.world import MODEL_DIR

    flat_picture((64, 64)).save(tmp_path / "drawing.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((12, 20, 35, 43), fill=255)
    mask.save(tmp_path / "dress.png")
    adapter = save_tiny_ip_adapter(tmp_path / "ip", MODEL_DIR)
    Image.new("RGB", (40, 40), (20, 160, 60)).save(tmp_path / "outfit.png")
    story = tmp_path / "story.yaml"
    story.write_text(
        f"""
model: {{base: world, steps: 4}}
layout: grid-2x1
panels:
  - prompt: a cartoon of a girl in a green dress
    edit: {{image: drawing.png, mask: dress.png}}
  - prompt: a cartoon of a girl
    image_prompt: {{image: outfit.png, adapter: {adapter}, preset: outfit}}
""",
        encoding="utf-8",
    )
    result = api.comic(story, show_progress=False)
    sidecar = json.loads(result.sidecars[0].read_text())
    edited, prompted = (result.folder / "panels" / f"{p['pictures'][0]['key']}.png" for p in sidecar["panels"])
    inside = np.asarray(mask) == 255
    change = np.abs(_pixels(edited) - _pixels(tmp_path / "drawing.png"))
    assert change[~inside].max() == 0 and change[inside].mean() > 10
    params = read_png_params(edited).extra
    assert params["Denoising strength"] == "1" and params["Mask"].endswith("dress.png")
    assert read_png_params(prompted).extra["IP-Adapter preset"] == "outfit"
    # a new mask (same path, other contents) redraws that panel only
    ImageDraw.Draw(mask).rectangle((0, 0, 10, 10), fill=255)
    mask.save(tmp_path / "dress.png")
    again = api.comic(story, show_progress=False)
    assert again.drawn == 1 and again.cached == 1
    story.write_text(story.read_text().replace("mask: dress.png", "mask: gone.png"))
    code, _, err = run_cli("comic", story, capsys=capsys)
    assert code == 2 and "edit.mask gone.png not found" in err


def test_sdxl_inpainting_restyling_and_a_pose_run_on_a_tiny_sdxl(tiny_sdxl, tmp_path):
    """SDXL's pipelines take other arguments (pooled text, time ids): each condition runs through them too."""
    flat_picture((32, 32)).save(tmp_path / "in.png")
    mask = Image.new("L", (32, 32), 0)
    ImageDraw.Draw(mask).rectangle((8, 12, 23, 27), fill=255)
    common = dict(model=api.ModelChoice(str(tiny_sdxl)), show_progress=False, **DRAW)
    inpainted = api.edit(None, tmp_path / "in.png", ["a girl"], mask=mask, out_dir=tmp_path / "i", **common)
    change = np.abs(_pixels(inpainted.images[0]) - _pixels(tmp_path / "in.png"))
    assert change[np.asarray(mask) == 0].max() == 0 and change[np.asarray(mask) == 255].mean() > 1
    restyled = api.edit(None, tmp_path / "in.png", ["a girl"], strength=0.7, out_dir=tmp_path / "r", **common)
    assert Image.open(restyled.images[0]).size == (32, 32)
    net = save_tiny_controlnet(tmp_path / "cn", tiny_sdxl)
    Image.new("RGB", (32, 32)).save(tmp_path / "pose.png")
    posed = api.generate(None, ["a girl"], conditions=build(pose=tmp_path / "pose.png", controlnet=str(net)), width=32, height=32,
                         out_dir=tmp_path / "p", **common)  # fmt: skip
    assert "ControlNet 0" in read_png_params(posed.images[0]).extra


def test_ip_adapter_locations_and_their_image_encoders(tmp_path):
    from charforge.generate.conditions import image_encoder_folder, ip_adapter_location

    sd15 = ip_adapter_location("h94/IP-Adapter/models/ip-adapter_sd15.safetensors")
    assert sd15 == ("h94/IP-Adapter", "models", "ip-adapter_sd15.safetensors") and image_encoder_folder(sd15) == "image_encoder"
    xl = ip_adapter_location("h94/IP-Adapter/sdxl_models/ip-adapter_sdxl.safetensors")
    assert image_encoder_folder(xl) == "image_encoder"  # sdxl_models/image_encoder: ViT-bigG
    vit_h = ip_adapter_location("h94/IP-Adapter/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors")
    assert image_encoder_folder(vit_h) == "models/image_encoder"  # the ViT-H encoder, from the repository's root
    with pytest.raises(CharforgeError, match="OWNER/REPO/SUBFOLDER/FILE"):
        ip_adapter_location("h94/IP-Adapter")
    with pytest.raises(CharforgeError, match="pickles"):
        ip_adapter_location("h94/IP-Adapter/models/ip-adapter_sd15.bin")


def test_edit_takes_one_mask_and_no_mask_with_restyle(tmp_path, capsys):
    """The choice between a mask file, mask words and a palette colour is the API's, so the CLI and the UI agree."""
    Image.new("RGB", (32, 32), "white").save(tmp_path / "in.png")
    Image.new("L", (32, 32), 255).save(tmp_path / "m.png")
    with pytest.raises(CharforgeError, match="give one of --mask, --mask-words, --by-colour"):
        api.edit(
            None,
            tmp_path / "in.png",
            ["a girl"],
            mask=tmp_path / "m.png",
            by_colour="#ffffff",
            model=api.ModelChoice(base="world"),
        )
    with pytest.raises(CharforgeError, match="--restyle redraws the whole picture"):
        api.edit(None, tmp_path / "in.png", ["a girl"], mask_words="clothing", restyle=True, model=api.ModelChoice(base="world"))
    with pytest.raises(CharforgeError, match="or --restyle to redraw the whole picture"):
        api.edit(None, tmp_path / "in.png", ["a girl"], restyle=False, model=api.ModelChoice(base="world"))
    ws = api.init(tmp_path / "ws", token="sks", class_word="girl")
    code, _, err = run_cli("edit", ws.root, tmp_path / "in.png", "a girl", capsys=capsys)
    assert code == 2 and "or --restyle" in err and "Traceback" not in err
