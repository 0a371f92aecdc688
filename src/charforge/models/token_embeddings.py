"""Pivotal tuning: the identifier's input embedding trains beside a LoRA (diffusers' advanced DreamBooth-LoRA
script calls it ``--train_text_encoder_ti``).

A LoRA cannot move a token's embedding: the identifier keeps whatever vector the base model gave it. In a real
model ``sks`` has a learnt meaning the LoRA can build on; in a model that never saw the token (the mini world) it is
a random vector and LoRA alone does not bind the character to it. Training only that token's rows fixes this while
every other word keeps its meaning.

The rows are saved beside the LoRA (``token_embeddings.safetensors``, one tensor per text encoder, the token in the
metadata) and written back into the text encoders' embedding tables when the LoRA is applied. The kohya copy of the
LoRA bundles them too (``bundle_emb.<token>.*`` keys, which A1111 and ComfyUI read), so that one file carries the whole
character into those tools, and charforge reads them back from such a file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .files import TOKEN_EMBEDDINGS_FILE

_TOKENIZER_OF = {"text_encoder": "tokenizer", "text_encoder_2": "tokenizer_2"}
# Keys of an embedding bundled in a kohya LoRA file, as A1111's Lora extension and ComfyUI read them (OneTrainer writes
# them): ``string_to_param.*`` (A1111's textual-inversion layout) for a model with one text encoder, ``clip_l`` and
# ``clip_g`` for SDXL's two.
BUNDLE_PREFIX = "bundle_emb."
_BUNDLE_ENCODER = {"string_to_param.*": "text_encoder", "clip_l": "text_encoder", "clip_g": "text_encoder_2"}


def token_ids(pipe, encoder_name: str, token: str) -> list[int]:
    """The ids ``token`` tokenizes to in ``encoder_name``'s tokenizer (several for a word the vocabulary splits)."""
    tokenizer = getattr(pipe, _TOKENIZER_OF[encoder_name])
    return list(tokenizer(token, add_special_tokens=False).input_ids)


def enable_token_training(encoder: torch.nn.Module, ids: list[int]) -> torch.nn.Parameter:
    """Make the embedding table trainable with gradients masked to ``ids``; returns the table's parameter.

    The optimizer must not decay it (weight decay would shrink every other row); see ``_make_optimizer``.
    """
    table = encoder.get_input_embeddings().weight
    table.requires_grad_(True)
    mask = torch.zeros(table.shape[0], 1)
    mask[ids] = 1
    # The table moves to the training device and dtype after this (``_place_models``): follow the gradient's.
    table.register_hook(lambda grad: grad * mask.to(grad.device, grad.dtype))
    return table


def put_rows(table: torch.Tensor, ids: list[int], values: torch.Tensor) -> torch.Tensor:
    """Write ``values`` into rows ``ids`` of an embedding table; returns the rows it replaced."""
    with torch.no_grad():
        previous = table[ids].clone()
        table[ids] = values.to(table.device, table.dtype)
    return previous


def _storable(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp32 CPU copies, as safetensors files carry them whatever the training device and precision."""
    return {k: v.detach().float().cpu().contiguous() for k, v in rows.items()}


def save_token_embeddings(folder: Path, token: str, rows: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    path = folder / TOKEN_EMBEDDINGS_FILE
    save_file(_storable(rows), str(path), metadata={"token": token})
    return path


def read_token_embeddings(folder: Path) -> tuple[str, dict[str, torch.Tensor]] | None:
    """``(token, rows per text encoder)`` saved in ``folder``, or None when it has none."""
    from safetensors import safe_open

    path = folder / TOKEN_EMBEDDINGS_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        token = (f.metadata() or {}).get("token", "")
        rows = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    if not token:
        raise ValueError(f"{path}: no token named in its metadata")
    return token, rows


def bundle(token: str, rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The kohya-file keys that carry ``token``'s rows (see ``BUNDLE_PREFIX``)."""
    two_encoders = "text_encoder_2" in rows
    part = {"text_encoder": "clip_l" if two_encoders else "string_to_param.*", "text_encoder_2": "clip_g"}
    return {f"{BUNDLE_PREFIX}{token}.{part[name]}": v for name, v in _storable(rows).items()}


def unbundle(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[tuple[str, dict[str, torch.Tensor]]]]:
    """Split a kohya LoRA's tensors into the LoRA's own and the embeddings bundled with it, ``[(token, rows)]``."""
    lora: dict[str, torch.Tensor] = {}
    bundled: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not key.startswith(BUNDLE_PREFIX):
            lora[key] = value
            continue
        part = next((p for p in _BUNDLE_ENCODER if key.endswith("." + p)), None)
        if part is None:
            raise ValueError(f"bundled embedding {key!r} is for a text encoder charforge does not know")
        token = key[len(BUNDLE_PREFIX) : -len(part) - 1]
        # A1111's layout keeps several vectors per word in one [n, dim] tensor, as the rows are here.
        bundled.setdefault(token, {})[_BUNDLE_ENCODER[part]] = value.reshape(-1, value.shape[-1])
    return lora, list(bundled.items())


Restore = list[tuple[torch.nn.Parameter, list[int], torch.Tensor]]


def write_token_embeddings(pipe, token: str, rows: dict[str, torch.Tensor]) -> Restore:
    """Put the saved rows into the pipeline's embedding tables; returns what :func:`restore_token_embeddings` needs."""
    restore: Restore = []
    for name, values in rows.items():
        encoder = getattr(pipe, name, None)
        if encoder is None:
            raise ValueError(f"the model has no {name} for the token embeddings of {token!r}")
        ids = token_ids(pipe, name, token)
        table = encoder.get_input_embeddings().weight
        if values.shape != (len(ids), table.shape[1]):
            raise ValueError(
                f"token embeddings of {token!r} for {name} have shape {tuple(values.shape)}; "
                f"this model needs {(len(ids), table.shape[1])}"
            )
        restore.append((table, ids, put_rows(table, ids, values)))
    return restore


def restore_token_embeddings(restore: Restore) -> None:
    for table, ids, values in reversed(restore):
        put_rows(table, ids, values)
