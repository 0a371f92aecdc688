"""The mini world's tokenizer: CLIP's BPE format with a vocabulary made from the caption grammar.

Every grammar word is one token (merges built for it), every other string falls back to single
characters as in real CLIP, and a few rare identifiers (``sks``, ``ohwx``, ...) are whole tokens
that no caption uses, so DreamBooth identifiers behave as they do with real models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..models.tiny import _bytes_to_unicode
from .attributes import ALL_VALUES

RARE_TOKENS = ("sks", "ohwx", "zwx", "qxy")
GRAMMAR_WORDS = (
    "a",
    "an",
    "the",
    "cartoon",
    "of",
    "girl",
    "with",
    "and",
    "hair",
    "skin",
    "in",
    "clothes",
    "background",
    "picture",
    "photo",
)
MAX_LENGTH = 64
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def vocabulary_words() -> list[str]:
    words: list[str] = []
    for value in [*GRAMMAR_WORDS, *RARE_TOKENS, *(v for values in ALL_VALUES.values() for v in values)]:
        for word in re.findall(r"[a-z]+", value.lower()):
            if word not in words:
                words.append(word)
    return words


def _write(folder: Path, tokens: list[str], merges: list[tuple[str, str]]) -> None:
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    vocab = {t: i for i, t in enumerate([*tokens, BOS, EOS])}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(specials), encoding="utf-8")
    config = {"model_max_length": MAX_LENGTH, "tokenizer_class": "CLIPTokenizer", **specials}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


def write_world_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt + configs that ``CLIPTokenizer.from_pretrained`` reads.

    BPE applies the lowest-ranked merge first, so one word's merges can split another word. Merges
    are therefore grown until every grammar word comes out as one token: each round appends merges
    joining the pieces the tokenizer still produces.
    """
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    pending = {word: list(word[:-1]) + [word[-1] + "</w>"] for word in vocabulary_words()}
    for _ in range(20):
        for pieces in pending.values():
            current = pieces[0]
            for piece in pieces[1:]:
                if (current, piece) not in merges:
                    merges.append((current, piece))
                current = current + piece
                if current not in tokens:
                    tokens.append(current)
        _write(folder, tokens, merges)
        tokenizer = CLIPTokenizer.from_pretrained(folder)
        pending = {w: p for w in vocabulary_words() if len(p := tokenizer.tokenize(w)) != 1}
        if not pending:
            return
    raise RuntimeError(f"could not make single tokens of {sorted(pending)}")
