"""The mini world's tokenizer: CLIP's BPE format with a vocabulary made from the caption grammar.

Every grammar word is one token (merges built for it), every other string falls back to single
characters as in real CLIP, and a few rare identifiers (``sks``, ``ohwx``, ...) are whole tokens
that no caption uses, so DreamBooth identifiers behave as they do with real models.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..models.tiny import byte_tokens, write_clip_tokenizer
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


def vocabulary_words() -> list[str]:
    words: list[str] = []
    for value in [*GRAMMAR_WORDS, *RARE_TOKENS, *(v for values in ALL_VALUES.values() for v in values)]:
        for word in re.findall(r"[a-z]+", value.lower()):
            if word not in words:
                words.append(word)
    return words


def write_world_tokenizer(folder: Path) -> None:
    """vocab.json + merges.txt + configs that ``CLIPTokenizer.from_pretrained`` reads.

    BPE applies the lowest-ranked merge first, so one word's merges can split another word. Merges
    are therefore grown until every grammar word comes out as one token: each round appends merges
    joining the pieces the tokenizer still produces.
    """
    from transformers import CLIPTokenizer

    tokens = byte_tokens()
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
        write_clip_tokenizer(folder, tokens, merges, MAX_LENGTH)
        tokenizer = CLIPTokenizer.from_pretrained(folder)
        pending = {w: p for w in vocabulary_words() if len(p := tokenizer.tokenize(w)) != 1}
        if not pending:
            return
    raise RuntimeError(f"could not make single tokens of {sorted(pending)}")
