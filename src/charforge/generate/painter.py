"""The one painter: each base model loaded once, wearing one set of weights at a time.

``generate``, evaluation, the comic and the mini-world experiment all draw through a :class:`Painter`, so what a
base "wears" (LoRAs with weights and the identifier embeddings they carry, or a DreamBooth checkpoint's parts) is put
on and taken off in one place, and a caller that draws many groups of pictures does not load the base again for each.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import CharforgeError
from ..models.loading import BaseModel, first_line, load_base_model, model_defaults, restore_parts, swap_finetuned
from ..models.token_embeddings import Restore, restore_token_embeddings
from .conditions import (
    Conditions,
    check_ip_adapter_fits,
    image_encoder_folder,
    ip_adapter_location,
    load_controlnet,
    with_defaults,
)
from .schedulers import make_scheduler
from .text2image import LoraSpec, apply_loras


@dataclass(frozen=True)
class Wearing:
    """What a base draws with: LoRAs (path, weight), or the parts of a DreamBooth checkpoint folder."""

    loras: tuple[tuple[Path, float], ...] = ()
    finetuned: Path | None = None

    @classmethod
    def of(cls, loras: list[LoraSpec] | tuple = (), finetuned: Path | None = None) -> Wearing:
        return cls(tuple((Path(s.path), float(s.weight)) for s in loras), finetuned)

    @property
    def specs(self) -> list[LoraSpec]:
        return [LoraSpec(path, weight) for path, weight in self.loras]


NOTHING = Wearing()


class Painter:
    """Loads each base once (``allow_unsafe_pickle`` and ``base_config`` as ``load_base_model`` takes them)."""

    def __init__(self, *, allow_unsafe_pickle: bool = False, base_config: str | None = None, family: str | None = None) -> None:
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.base_config = base_config
        self.family = family  # when set, a base of another family is refused (a run's weights only fit its own)
        self._models: dict[str, BaseModel] = {}
        self._wearing: dict[str, Wearing] = {}
        self._undo: dict[str, tuple[Restore, dict]] = {}  # per base: token rows and parts to put back
        self._ip_adapter: dict[str, str] = {}  # per base: the IP-Adapter loaded into it
        self._controlnets: dict[tuple[str, str], Any] = {}

    def model(self, base: str) -> BaseModel:
        if base not in self._models:
            model = load_base_model(base, allow_unsafe_pickle=self.allow_unsafe_pickle, base_config=self.base_config)
            if self.family and model.family.value != self.family:
                raise CharforgeError(
                    f"--base {base} is a {model.family.label} model but the run was trained on {self.family}; "
                    "use a base of the same family"
                )
            model.pipe.set_progress_bar_config(disable=True)
            self._models[base] = model
            self._wearing[base] = NOTHING
        return self._models[base]

    def wear(self, base: str, wearing: Wearing = NOTHING, *, sampler: str | None = None) -> BaseModel:
        """The base with ``wearing`` on (and what it wore before taken off), drawing with ``sampler``."""
        model = self.model(base)
        if self._wearing[base] != wearing:
            self._take_off(base)
            rows: Restore = []
            parts = swap_finetuned(model.pipe, wearing.finetuned) if wearing.finetuned is not None else {}
            self._undo[base] = (rows, parts)  # recorded before the LoRAs: a failed LoRA still leaves the parts undoable
            self._wearing[base] = Wearing(finetuned=wearing.finetuned)
            rows += apply_loras(model, wearing.specs)
            self._wearing[base] = wearing
        if sampler is not None:  # a fresh one each time: a scheduler is cheap, and another caller may have swapped it
            model.pipe.scheduler = make_scheduler(sampler, model.scheduler_config, type(model.pipe).__name__)
        return model

    def _take_off(self, base: str) -> None:
        model, worn = self._models[base], self._wearing[base]
        rows, parts = self._undo.pop(base, ([], {}))
        if worn.loras:
            model.pipe.unload_lora_weights()
        restore_token_embeddings(rows)
        restore_parts(model.pipe, parts)
        self._wearing[base] = NOTHING

    def condition(self, base: str, conditions: Conditions) -> tuple[Conditions, Any]:
        """Prepare ``base`` for ``conditions``: its IP-Adapter loaded (or unloaded when none is asked) with its scale.
        Returns the conditions with the family's default ControlNet / IP-Adapter filled in, and the ControlNet a
        pose needs (each loaded once) or None."""
        model = self.model(base)
        if model.family.denoiser != "unet" and (conditions.pose is not None or conditions.image_prompt is not None):
            raise CharforgeError(
                f"--pose and --image-prompt use UNet ControlNets and IP-Adapters (SD1.x, SD2.x, SDXL); this is a "
                f"{model.family.label} model"
            )
        prompt = conditions.image_prompt
        own = model_defaults(base).get("ip_adapter") if prompt is not None and not prompt.adapter else None
        conditions = with_defaults(conditions, model.family.value, own)
        if conditions.image_prompt is not None:
            conditions = replace(conditions, image_prompt=conditions.image_prompt.for_unet(model.pipe.unet.config))
        prompt = conditions.image_prompt
        loaded = self._ip_adapter.get(base)
        if loaded is not None and (prompt is None or prompt.adapter != loaded):
            model.pipe.unload_ip_adapter()
            self._ip_adapter.pop(base)
        if prompt is not None:
            if base not in self._ip_adapter:
                location = ip_adapter_location(prompt.adapter, allow_unsafe_pickle=self.allow_unsafe_pickle)
                check_ip_adapter_fits(location, model.pipe, prompt.adapter)
                folder, subfolder, weight = location
                try:
                    model.pipe.load_ip_adapter(
                        folder, subfolder=subfolder, weight_name=weight, image_encoder_folder=image_encoder_folder(location)
                    )
                except (OSError, ValueError, KeyError, RuntimeError) as exc:
                    raise CharforgeError(f"--ip-adapter {prompt.adapter}: cannot be loaded ({first_line(exc)})") from None
                self._ip_adapter[base] = prompt.adapter
            model.pipe.set_ip_adapter_scale(prompt.scale)
        if conditions.pose is None:
            return conditions, None
        key = (base, conditions.pose.controlnet)
        if key not in self._controlnets:
            self._controlnets[key] = load_controlnet(conditions.pose.controlnet, model.pipe)
        return conditions, self._controlnets[key]
