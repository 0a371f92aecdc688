"""Image and text embeddings for identity and prompt scores, through ``transformers``.

- CLIP (``CLIPModel``): image embeddings for *CLIP-I* (identity) and text embeddings for *CLIP-T*
  (prompt fidelity), as in DreamBooth's DreamBench;
- DINO / DINOv2 (``AutoModel``, a ViT): the CLS token of the last layer for *DINO* (identity), which
  DreamBench prefers because it is not invariant to the details that make a character itself.

Model ids are configurable (hub ids or local folders) and loaded with ``use_safetensors=True``: no
pickle is ever unpickled. Embeddings are L2-normalised, so similarities are plain dot products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import CharforgeError
from ..models.hub import local_files_only
from ..models.loading import first_line, quiet_loading

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
DEFAULT_DINO = "facebook/dino-vits16"
DINO_TYPES = ("vit", "dinov2", "dinov2_with_registers")


def _config(source: str, option: str, wanted: tuple[str, ...], what: str):
    """The model's config, checked to be the right kind before any weights load."""
    from transformers import AutoConfig

    quiet_loading()
    local = local_files_only(source, what=f"--{option}", instead=f"pass --{option} with a local folder, or --{option} none")
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError, TypeError) as exc:
        raise CharforgeError(f"--{option} {source}: cannot load ({first_line(exc)})") from exc
    kind = getattr(config, "model_type", "") or "unknown"
    if kind not in wanted:
        raise CharforgeError(f"--{option} {source}: a {kind} model, not {what}")
    return config, local


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def _batches(items: Sequence[Any], size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _loaded(option: str, source: str, what: str, load):
    """``load()`` -> (model, processor), in eval mode; any loading failure becomes one clear line."""
    try:
        model, processor = load()
    except (OSError, ValueError, TypeError) as exc:
        raise CharforgeError(f"--{option} {source}: cannot load {what} ({first_line(exc)})") from exc
    return model.eval(), processor


@dataclass
class _ImageEncoder:
    source: str
    model: Any
    processor: Any
    batch_size: int = 16

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Unit-length embeddings of ``images``, ``batch_size`` at a time."""
        out = []
        for batch in _batches([im.convert("RGB") for im in images], self.batch_size):
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            out.append(_normalise(self._embed(pixels)))
        return torch.cat(out)


class ClipEncoder(_ImageEncoder):
    """CLIP image and text towers (one model, shared projection space)."""

    @classmethod
    def load(cls, source: str, batch_size: int = 16) -> ClipEncoder:
        from transformers import AutoProcessor, CLIPModel

        _, local = _config(source, "clip", ("clip",), "a CLIP model (text and image towers)")
        model, processor = _loaded(
            "clip",
            source,
            "a CLIP model",
            lambda: (
                CLIPModel.from_pretrained(source, use_safetensors=True, local_files_only=local),
                AutoProcessor.from_pretrained(source, local_files_only=local),
            ),
        )
        return cls(source, model, processor, batch_size)

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixels))

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        limit = self.model.config.text_config.max_position_embeddings
        for batch in _batches(list(texts), self.batch_size):
            tokens = self.processor(text=batch, return_tensors="pt", padding=True, truncation=True, max_length=limit)
            features = self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            out.append(_normalise(_features(features)))
        return torch.cat(out)


def _features(output: Any) -> torch.Tensor:
    # transformers 5 returns a model output (pooler_output = projected embedding); older ones a tensor.
    return output if torch.is_tensor(output) else output.pooler_output


class DinoEncoder(_ImageEncoder):
    """A self-supervised ViT (DINO or DINOv2); the embedding is the final CLS token."""

    @classmethod
    def load(cls, source: str, batch_size: int = 16) -> DinoEncoder:
        from transformers import AutoImageProcessor, AutoModel, ViTModel

        config, local = _config(source, "dino", DINO_TYPES, "a ViT/DINO image encoder")

        def load():
            if config.model_type == "vit":  # DINO v1 checkpoints have no pooler; we read the CLS token anyway
                model = ViTModel.from_pretrained(source, add_pooling_layer=False, use_safetensors=True, local_files_only=local)
            else:
                model = AutoModel.from_pretrained(source, use_safetensors=True, local_files_only=local)
            return model, AutoImageProcessor.from_pretrained(source, local_files_only=local)

        model, processor = _loaded("dino", source, "a DINO model", load)
        return cls(source, model, processor, batch_size)

    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixels).last_hidden_state[:, 0]


def model_fingerprint(source: str) -> str:
    """What identifies an encoder's weights for the embedding cache: the id, or a local folder's contents."""
    path = Path(source)
    if path.is_dir():
        from ..digest import folder_digest

        return f"{path.resolve()}:{folder_digest(path)}"
    return source
