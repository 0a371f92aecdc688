"""Every command's options are one strict model: the CLI's flags are made from it, ``--config`` fills it, the API
validates into it, and a typo anywhere is one line naming the known names."""

from __future__ import annotations

import pytest
from conftest import run_cli
from PIL import Image

from charforge import api
from charforge.comic.options import ComicOptions
from charforge.config import TrainConfig
from charforge.data.prepare import PrepareOptions
from charforge.errors import CharforgeError
from charforge.evaluate.options import EvalOptions
from charforge.generate.options import DrawOptions, EditOptions, GenerateOptions, MaskOptions
from charforge.options import cli_spec

COMMANDS = {
    "prepare": PrepareOptions,
    "generate": GenerateOptions,
    "edit": EditOptions,
    "mask": MaskOptions,
    "evaluate": EvalOptions,
    "comic": ComicOptions,
    "train": TrainConfig,
}


def _flags(command: str) -> set[str]:
    """The options the real command declares, as click parses them."""
    import typer.main

    from charforge.cli import app

    group = typer.main.get_command(app)
    return {flag for param in group.commands[command].params for flag in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_field_is_a_flag_and_every_command_takes_a_config(command):
    model, flags = COMMANDS[command], _flags(command)
    assert "--config" in flags
    for name, field in model.model_fields.items():
        spec = cli_spec(field)
        if spec["hidden"] or (command == "train" and name == "base"):  # train declares --base itself
            continue
        wanted = [f for f in spec["flags"] if f.startswith("--")] or ["--" + name.replace("_", "-")]
        assert set(wanted[0].split("/")) & flags, (command, name, wanted)


def test_the_api_refuses_a_misspelt_option_naming_the_known_ones(tmp_path):
    with pytest.raises(CharforgeError, match=r"unknown option 'num_imgaes' \(known: .*num_images"):
        api.generate(None, ["x"], model=api.ModelChoice(base="world"), num_imgaes=2)
    with pytest.raises(CharforgeError, match=r"base=\.\.\., checkpoint=\.\.\.: the model is chosen with model=api.ModelChoice"):
        api.generate(None, ["x"], base="world", checkpoint=2)  # the keywords of before ModelChoice
    with pytest.raises(CharforgeError, match="unknown option 'resolutoin'"):
        api.prepare(tmp_path, ["x.png"], resolutoin=64)
    with pytest.raises(CharforgeError, match="unknown option 'stpes'"):
        api.evaluate(tmp_path, stpes=3)


def test_options_layer_defaults_then_config_then_flags(tmp_path):
    config = tmp_path / "draw.yaml"
    config.write_text("steps: 12\nnegative-prompt: blurry\nseeds: 3,4\n")
    built = GenerateOptions.build(GenerateOptions(steps=5, guidance=3.0), config_file=config, sampler="euler")
    assert (built.steps, built.guidance, built.negative_prompt, built.sampler, built.seeds) == (
        12,
        3.0,
        "blurry",
        "euler",
        [3, 4],
    )
    assert built.seed_list == [3, 4]
    assert DrawOptions(seed=7, num_images=3).seed_list == [7, 8, 9]
    # another model's options carry over the fields both have
    assert EditOptions(steps=9, restyle=True).pick(DrawOptions).steps == 9


def test_a_config_file_sets_what_the_flags_set(tmp_path, capsys, drawings):
    assert run_cli("init", tmp_path / "ws", "--token", "sks", "--class-word", "girl", capsys=capsys)[0] == 0
    config = tmp_path / "prepare.yaml"
    config.write_text("resolution: 64\ncrop: center\n")
    source = next(drawings.glob("*.png"))
    code, _, err = run_cli("prepare", tmp_path / "ws", source, "--config", config, capsys=capsys)
    assert code == 0, err
    written = sorted((tmp_path / "ws" / "images").glob("*.png"))
    assert written and Image.open(written[0]).size == (64, 64)
    # a flag given wins over the file, which wins over the defaults
    assert run_cli("init", tmp_path / "ws2", "--token", "sks", "--class-word", "girl", capsys=capsys)[0] == 0
    code, _, err = run_cli("prepare", tmp_path / "ws2", source, "--config", config, "--resolution", "72", capsys=capsys)
    assert code == 0, err
    assert Image.open(sorted((tmp_path / "ws2" / "images").glob("*.png"))[0]).size == (72, 72)

    config.write_text("resolutoin: 64\n")
    code, _, err = run_cli("prepare", tmp_path / "ws", source, "--config", config, capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{config}: unknown option 'resolutoin' (known: " in err and "resolution" in err
    code, _, err = run_cli("prepare", tmp_path / "ws", source, "--resolution", "63", capsys=capsys)
    assert code == 2 and "resolution: must be a multiple of 8 and at least 64 (got 63)" in err
    code, _, err = run_cli("prepare", tmp_path / "ws", source, "--background", "nocolour", capsys=capsys)
    assert code == 2 and "'nocolour' is not a colour" in err


def test_comma_separated_seeds_and_checkpoints_are_checked():
    assert GenerateOptions(seeds="1, 2,3").seeds == [1, 2, 3]
    assert EvalOptions(checkpoints="600,1200").checkpoints == [600, 1200]
    with pytest.raises(CharforgeError, match="seeds"):
        GenerateOptions.build(seeds="1,two")
    with pytest.raises(CharforgeError, match="--batch-size must be at least 1"):
        GenerateOptions.build(batch_size=0)


def test_edit_on_the_command_line_insists_on_a_mask_or_restyle_but_the_api_restyles(tmp_path, capsys):
    """The command line's default for --restyle (False) differs from the API's (None: decide by the mask)."""
    Image.new("RGB", (32, 32), "white").save(tmp_path / "in.png")
    assert run_cli("init", tmp_path / "ws", "--token", "sks", "--class-word", "girl", capsys=capsys)[0] == 0
    code, _, err = run_cli("edit", tmp_path / "ws", tmp_path / "in.png", "x", "--base", "world", capsys=capsys)
    assert code == 2 and "or --restyle to redraw the whole picture" in err
    assert EditOptions().restyle is None
