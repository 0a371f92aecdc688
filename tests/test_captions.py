"""Captioning: template and a tiny BLIP built from configs; tokens inserted; edits kept; metadata.jsonl."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli

from charforge import api
from charforge.data.captions import insert_token
from charforge.errors import CharforgeError


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory):
    """A BLIP captioning model at toy size (random weights) with a small WordPiece vocabulary."""
    import transformers
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipProcessor

    torch.manual_seed(0)  # the same weights whatever ran before
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


def _byte_vocab(folder, specials):
    from charforge.models.tiny import _bytes_to_unicode

    vocab = {t: i for i, t in enumerate([*specials, *_bytes_to_unicode()])}
    vocab["<image>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return vocab


@pytest.fixture(scope="session")
def tiny_blip2(tmp_path_factory):
    """BLIP-2 at toy size: ViT + Q-Former + a one-layer OPT, byte-level GPT-2 tokenizer."""
    import transformers
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, GPT2Tokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("blip2")
    vocab = _byte_vocab(folder, ["<pad>", "</s>", "<unk>"])
    tokenizer = GPT2Tokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="</s>",
        unk_token="<unk>",
    )
    image_processor = transformers.BlipImageProcessorPil(size={"height": 32, "width": 32})
    Blip2Processor(image_processor=image_processor, tokenizer=tokenizer, num_query_tokens=4).save_pretrained(folder)
    small = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37)
    config = Blip2Config(
        vision_config=dict(**small, image_size=32, patch_size=8),
        qformer_config=dict(**small, encoder_hidden_size=32, vocab_size=100),
        text_config=dict(
            model_type="opt",
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=1,
            ffn_dim=37,
            num_attention_heads=4,
            word_embed_proj_dim=32,
            max_position_embeddings=128,
            pad_token_id=vocab["<pad>"],
            bos_token_id=vocab["</s>"],
            eos_token_id=vocab["</s>"],
        ),
        num_query_tokens=4,
        image_token_index=vocab["<image>"],
    )
    Blip2ForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_florence2(tmp_path_factory):
    """Florence-2 at toy size: a two-stage DaViT and a one-layer BART (transformers' native class)."""
    import transformers
    from transformers import BartTokenizer, Florence2Config, Florence2ForConditionalGeneration, Florence2Processor

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("florence2")
    vocab = _byte_vocab(folder, ["<s>", "<pad>", "</s>", "<unk>"])
    tokenizer = BartTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), extra_special_tokens={"image_token": "<image>"}
    )
    image_processor = transformers.CLIPImageProcessorPil(
        size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=False
    )
    image_processor.image_seq_length = 17  # 4x4 visual tokens after strides 4 and 2, plus the pooled one
    Florence2Processor(image_processor=image_processor, tokenizer=tokenizer, num_additional_image_tokens=0).save_pretrained(
        folder
    )
    vision = dict(
        depths=(1, 1),
        patch_size=(7, 3),
        patch_stride=(4, 2),
        patch_padding=(3, 1),
        patch_prenorm=(False, True),
        embed_dim=(16, 32),
        num_heads=(2, 4),
        num_groups=(2, 4),
        window_size=2,
        projection_dim=32,
        max_position_embeddings=16,
        max_temporal_embeddings=4,
    )
    text = dict(
        model_type="bart",
        vocab_size=len(vocab),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=37,
        decoder_ffn_dim=37,
        max_position_embeddings=256,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
    )
    config = Florence2Config(vision_config=vision, text_config=text, image_token_id=vocab["<image>"])
    Florence2ForConditionalGeneration(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["blip2", "florence2"])
def test_blip2_and_florence2_captioners(workspace, request, kind):
    """Random weights caption noise (Florence-2's may be empty); the real load-generate-decode path must run."""
    report = api.caption(workspace, captioner=kind, model=str(request.getfixturevalue(f"tiny_{kind}")))
    assert len(report.written) == len(workspace.training_images())
    assert all(text.startswith("UnicornGirl girl") for text in report.written.values())


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
    assert all(c.startswith("UnicornGirl girl") for c in captions)  # a random model's own words vary
    assert "metadata" in out


def test_caption_errors(workspace, tmp_path, capsys):
    code, _, err = run_cli("caption", workspace.root, "--captioner", "gpt", capsys=capsys)
    assert code == 2 and "--captioner 'gpt' is unknown" in err
    code, _, err = run_cli("caption", workspace.root, "--captioner", "blip", "--model", tmp_path / "none", capsys=capsys)
    assert code == 2 and "none: cannot load (no such folder)" in err and "Traceback" not in err
    with pytest.raises(CharforgeError, match="--token-mode"):
        api.caption(workspace, captioner="template", token_mode="middle", template="a picture")


def test_augmented_copies_take_their_sources_caption(tmp_path, drawings):
    """A flipped or zoomed-out copy shows what its source shows: it gets the source's caption, not a reading of its own
    (captioned alone, shrunk copies of the mini world's references were misread as "jumping" or "sad")."""
    from charforge.data.captions import caption_workspace

    ws = api.init(tmp_path / "ws", token="sks", class_word="girl")
    api.prepare(ws, [drawings], flip=True, zoom_out=1)
    sources = ws.copy_sources()
    originals = [p for p in ws.training_images() if p.stem not in sources]
    assert sources and len(sources) == 2 * len(originals)
    assert all(copy.startswith(source + "-") for copy, source in sources.items())

    seen: list[int] = []

    def numbering(images):  # a different caption for every picture it is shown
        seen.extend(range(len(seen), len(seen) + len(images)))
        return [f"drawing {n}" for n in seen[-len(images) :]]

    report = caption_workspace(ws, numbering)
    assert len(seen) == len(originals)  # the copies were not captioned on their own
    assert len(set(report.written.values())) == len(originals)
    for copy, source in sources.items():
        assert ws.caption_for(ws.images_dir / copy) == ws.caption_for(ws.images_dir / source)

    # an edited source caption reaches its copies; deleting a source drops its copies' link
    first = originals[0]
    (ws.captions_dir / f"{first.stem}.txt").write_text("sks girl waving, written by hand\n")
    caption_workspace(ws, numbering)
    edited = {ws.caption_for(ws.images_dir / c) for c, s in sources.items() if s == first.stem}
    assert edited == {"sks girl waving, written by hand"}
    first.unlink()
    assert first.stem not in ws.copy_sources().values()
