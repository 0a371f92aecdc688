"""Captions for mini-world drawings that name the scene and leave the character to the token.

The kohya way of teaching a character: a caption describes what changes from picture to picture
(pose, expression, background) and not what the identifier must absorb (hair, outfit, accessory).
Trained like that, "sks girl, arms up" keeps "arms up" meaning the pose, instead of every word
of the prompt being swallowed by the six reference poses. The judge reads the scene, so this
works on any mini-world drawing, the way BLIP would on real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from ..data.captions import TemplateCaptioner
from .attributes import Scene, scene_prompt
from .judge import Judge


@dataclass
class SceneCaptioner(TemplateCaptioner):
    """The template (token and class word) followed by the scene the judge reads in each picture."""

    template: str = "a cartoon of {token} {class_word}"

    def __call__(self, images: list[Image.Image]) -> list[str]:
        prefix = self.template.format(token=self.token, class_word=self.class_word)
        readings = Judge.load().read(images)
        return [scene_prompt(prefix, Scene(r.values["pose"], r.values["expression"], r.values["background"])) for r in readings]
