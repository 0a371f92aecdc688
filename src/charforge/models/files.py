"""The files a result folder holds, by name, and which of them other programs load.

One place for the names, so that saving (``lora``, ``token_embeddings``, ``kohya``) and finding (``loading``,
``generate``) agree without importing each other.
"""

from __future__ import annotations

from pathlib import Path

DIFFUSERS_LORA_FILE = "pytorch_lora_weights.safetensors"  # what DiffusionPipeline.load_lora_weights(folder) reads
TOKEN_EMBEDDINGS_FILE = "token_embeddings.safetensors"  # the identifier's trained rows, one tensor per text encoder
EMBEDDING_SUFFIX = "_emb"  # <lora name>_emb.safetensors: the identifier's embedding for textual-inversion loaders


def exported_file(folder: Path) -> Path | None:
    """The kohya LoRA (or, for a full model, the single-file checkpoint) written into a result folder."""
    found = [
        p
        for p in sorted(Path(folder).glob("*.safetensors"))
        if p.name not in (DIFFUSERS_LORA_FILE, TOKEN_EMBEDDINGS_FILE) and not p.stem.endswith(EMBEDDING_SUFFIX)
    ]
    return found[0] if found else None
