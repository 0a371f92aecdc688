"""Captioning: template and a tiny BLIP built from configs; tokens inserted; edits kept; metadata.jsonl."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from charforge import api
from charforge.data.captions import insert_token
from charforge.errors import CharforgeError


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory):
    """A BLIP captioning model at toy size (random weights) with a small WordPiece vocabulary."""
    import transformers
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipProcessor

    folder = tmp_path_factory.mktemp("blip")
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *["a", "picture", "of", "girl", "with", "pink", "hair", "in", "blue", "onesie"],
    ]
    words += list("abcdefghijklmnopqrstuvwxyz") + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
    (folder / "vocab.txt").write_text("\n".join(words))
    image_processor = transformers.BlipImageProcessorPil(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=BertTokenizer(str(folder / "vocab.txt"))).save_pretrained(folder)
    text = dict(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        bos_token_id=2,
        sep_token_id=3,
        pad_token_id=0,
    )
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, image_size=32, patch_size=8)
    BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=32)).save_pretrained(folder)
    return folder


def test_insert_token_modes():
    assert insert_token("a cartoon of a girl with pink hair.", "UnicornGirl", "girl") == (
        "UnicornGirl girl, a cartoon of a girl with pink hair"
    )
    assert insert_token("a cartoon of a girl with pink hair", "UnicornGirl", "girl", "replace") == (
        "a cartoon of a UnicornGirl girl with pink hair"
    )
    assert insert_token("a drawing of a robot", "sks", "girl", "replace", style="drawn by KSH drawing style") == (
        "a drawing of a sks robot, drawn by KSH drawing style"
    )
    assert insert_token("a picture of sks girl", "sks", "girl") == "a picture of sks girl"  # token already there
    assert insert_token("a red ball", "sks", "girl", "replace") == "sks girl, a red ball"  # no subject noun: prefix


def test_template_captions_metadata_and_kept_edits(workspace):
    report = api.caption(workspace, style="flat colours")
    names = [p.name for p in workspace.training_images()]
    assert sorted(report.written) == sorted(names)
    assert report.written[names[0]] == "a picture of UnicornGirl girl, flat colours"
    lines = [json.loads(line) for line in report.metadata.read_text().splitlines()]
    assert [line["file_name"] for line in lines] == names and lines[0]["text"].startswith("a picture of UnicornGirl")

    edited = workspace.captions_dir / f"{workspace.training_images()[0].stem}.txt"
    edited.write_text("UnicornGirl girl waving, hand-written caption\n")
    again = api.caption(workspace, template="an image of {token} {class_word}")
    assert again.kept == [names[0]] and names[0] not in again.written
    assert edited.read_text().startswith("UnicornGirl girl waving")
    assert again.written[names[1]] == "an image of UnicornGirl girl"  # unedited generated captions are refreshed
    forced = api.caption(workspace, overwrite=True)
    assert forced.written[names[0]] == "a picture of UnicornGirl girl"


def test_blip_captioner_through_the_cli(workspace, tiny_blip, capsys):
    code, out, err = run_cli("caption", workspace.root, "--captioner", "blip", "--model", tiny_blip, capsys=capsys)
    assert code == 0, err
    captions = [(workspace.captions_dir / f"{p.stem}.txt").read_text().strip() for p in workspace.training_images()]
    assert all(c.startswith("UnicornGirl girl, ") and len(c) > len("UnicornGirl girl, ") for c in captions)
    assert "metadata" in out


def test_caption_errors(workspace, tmp_path, capsys):
    code, _, err = run_cli("caption", workspace.root, "--captioner", "gpt", capsys=capsys)
    assert code == 2 and "--captioner 'gpt' is unknown" in err
    code, _, err = run_cli("caption", workspace.root, "--captioner", "blip", "--model", tmp_path / "none", capsys=capsys)
    assert code == 2 and "could not load" in err and "Traceback" not in err
    with pytest.raises(CharforgeError, match="--token-mode"):
        api.caption(workspace, captioner="template", token_mode="middle", template="a picture")
