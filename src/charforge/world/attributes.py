"""What a mini-world character is made of, and the caption grammar that names it.

A *character* is the identity (hair, outfit, accessory, skin) that DreamBooth must learn; a *scene*
is what a prompt changes around it (pose, expression, background). Keeping the two apart is what
lets the scores say "the right character" separately from "the asked pose".
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

from ..errors import CharforgeError

RGB = tuple[int, int, int]

HAIR_COLOURS: dict[str, RGB] = {
    "black": (40, 36, 44),
    "brown": (120, 72, 40),
    "blonde": (246, 210, 96),
    "red": (214, 52, 40),
    "pink": (246, 122, 188),
    "blue": (64, 120, 230),
    "purple": (140, 76, 200),
    "green": (64, 176, 84),
}
HAIR_STYLES = ("short", "long", "ponytail", "pigtails")
OUTFIT_COLOURS: dict[str, RGB] = {
    "blue": (56, 110, 222),
    "red": (220, 48, 52),
    "green": (56, 170, 80),
    "yellow": (250, 214, 50),
    "purple": (134, 70, 196),
    "orange": (246, 134, 36),
    "pink": (244, 128, 190),
}
OUTFIT_TYPES = ("onesie", "dress", "jacket and trousers", "overalls")
ACCESSORIES = ("none", "unicorn horn", "cat ears", "hat", "bow", "crown")
SKIN_TONES: dict[str, RGB] = {
    "light": (252, 222, 200),
    "tan": (230, 184, 140),
    "brown": (176, 118, 76),
    "dark": (112, 72, 48),
}
POSES = ("standing", "arms up", "waving", "sitting", "jumping", "side view", "looking back", "back view", "portrait")
EXPRESSIONS = ("smiling", "sad", "surprised", "angry", "eyes closed")
BACKGROUNDS: dict[str, RGB] = {
    "white": (255, 255, 255),
    "pink room": (250, 200, 220),
    "teal forest": (46, 140, 132),
    "blue sky": (140, 196, 250),
}

# Poses where the face is not seen: their captions and judge say nothing about the expression.
FACELESS_POSES = ("looking back", "back view")

CHARACTER_VALUES: dict[str, tuple[str, ...]] = {
    "hair_colour": tuple(HAIR_COLOURS),
    "hair_style": HAIR_STYLES,
    "outfit_colour": tuple(OUTFIT_COLOURS),
    "outfit_type": OUTFIT_TYPES,
    "accessory": ACCESSORIES,
    "skin": tuple(SKIN_TONES),
}
SCENE_VALUES: dict[str, tuple[str, ...]] = {
    "pose": POSES,
    "expression": EXPRESSIONS,
    "background": tuple(BACKGROUNDS),
}
ALL_VALUES = {**CHARACTER_VALUES, **SCENE_VALUES}


def check_value(name: str, value: str, where: str = "world spec") -> str:
    """``value`` if it is a valid ``name``; otherwise an error listing the valid names or values."""
    if name not in ALL_VALUES:
        raise CharforgeError(f"{where}: unknown attribute {name!r}; valid attributes: {', '.join(ALL_VALUES)}")
    if value not in ALL_VALUES[name]:
        raise CharforgeError(f"{where}: unknown {name} {value!r}; valid values: {', '.join(ALL_VALUES[name])}")
    return value


@dataclass(frozen=True)
class Character:
    hair_colour: str = "pink"
    hair_style: str = "short"
    outfit_colour: str = "blue"
    outfit_type: str = "onesie"
    accessory: str = "none"
    skin: str = "light"

    def __post_init__(self) -> None:
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))

    @classmethod
    def from_dict(cls, values: dict[str, str], where: str = "world spec") -> Character:
        for key, value in values.items():
            if key not in CHARACTER_VALUES:
                raise CharforgeError(f"{where}: unknown attribute {key!r}; valid attributes: {', '.join(CHARACTER_VALUES)}")
            check_value(key, str(value), where)
        return cls(**{k: str(v) for k, v in values.items()})

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Scene:
    pose: str = "standing"
    expression: str = "smiling"
    background: str = "white"

    def __post_init__(self) -> None:
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))

    @property
    def face_visible(self) -> bool:
        return self.pose not in FACELESS_POSES

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def random_character(rng: random.Random) -> Character:
    return Character(**{name: rng.choice(values) for name, values in CHARACTER_VALUES.items()})


def random_scene(rng: random.Random) -> Scene:
    return Scene(**{name: rng.choice(values) for name, values in SCENE_VALUES.items()})


def identity_key(character: Character) -> tuple[str, ...]:
    return tuple(getattr(character, name) for name in CHARACTER_VALUES)


# -- held-out characters ----------------------------------------------------------------------------
# Never rendered for the base model: teaching one of them is the thesis experiment in miniature.
HELD_OUT: dict[str, Character] = {
    "unicorn-girl": Character("pink", "short", "blue", "onesie", "unicorn horn", "light"),
    "cat-girl": Character("black", "pigtails", "yellow", "dress", "cat ears", "tan"),
    "explorer": Character("brown", "ponytail", "green", "jacket and trousers", "hat", "brown"),
    "princess": Character("blonde", "long", "purple", "dress", "crown", "light"),
    "mechanic": Character("red", "short", "orange", "overalls", "bow", "dark"),
}
HELD_OUT_KEYS = frozenset(identity_key(c) for c in HELD_OUT.values())

# The thesis' spread of six views: three front (one of them a portrait), one back, one side mostly
# front, one side mostly back.
REFERENCE_SCENES: tuple[Scene, ...] = (
    Scene("standing", "smiling", "white"),
    Scene("standing", "eyes closed", "white"),
    Scene("portrait", "smiling", "white"),
    Scene("back view", "smiling", "white"),
    Scene("side view", "smiling", "white"),
    Scene("looking back", "smiling", "white"),
)


def held_out(name: str) -> Character:
    if name not in HELD_OUT:
        raise CharforgeError(f"unknown held-out character {name!r}; valid: {', '.join(HELD_OUT)}")
    return HELD_OUT[name]


def training_character(rng: random.Random) -> Character:
    """A random character that is not one of the held-out identities."""
    while True:
        character = random_character(rng)
        if identity_key(character) not in HELD_OUT_KEYS:
            return character


# -- captions ---------------------------------------------------------------------------------------
def describe_character(character: Character) -> str:
    """'a girl with short pink hair and light skin in a blue onesie with a unicorn horn'."""
    c = character
    text = f"a girl with {c.hair_style} {c.hair_colour} hair and {c.skin} skin in a {c.outfit_colour} {c.outfit_type}"
    if c.accessory != "none":
        text += f" with a {c.accessory}"
    return text


def describe_scene(scene: Scene) -> list[str]:
    parts = [scene.pose]
    if scene.face_visible:
        parts.append(scene.expression)
    parts.append(f"{scene.background} background")
    return parts


def caption(character: Character, scene: Scene) -> str:
    """The full caption: 'a cartoon of a girl with ..., arms up, smiling, white background'."""
    return ", ".join([f"a cartoon of {describe_character(character)}", *describe_scene(scene)])


def partial_caption(character: Character, scene: Scene, rng: random.Random, drop: float = 0.3) -> str:
    """A caption with some attributes left out, so the model also answers short prompts.

    Each attribute is named with probability ``1 - drop``; what is not named stays free, which is
    what makes 'a cartoon of a girl' (the class prompt of prior preservation) give varied characters.
    """
    c = character
    keep = {name: rng.random() >= drop for name in ALL_VALUES}
    hair = " ".join(v for v, k in ((c.hair_style, keep["hair_style"]), (c.hair_colour, keep["hair_colour"])) if k)
    with_parts = []
    if hair:
        with_parts.append(f"{hair} hair")
    if keep["skin"]:
        with_parts.append(f"{c.skin} skin")
    text = "a cartoon of a girl"
    if with_parts:
        text += " with " + " and ".join(with_parts)
    outfit = " ".join(v for v, k in ((c.outfit_colour, keep["outfit_colour"]), (c.outfit_type, keep["outfit_type"])) if k)
    if outfit:
        text += f" in a {outfit}" if keep["outfit_type"] else f" in {c.outfit_colour} clothes"
    if c.accessory != "none" and keep["accessory"]:
        text += f" with a {c.accessory}"
    parts = [text]
    if keep["pose"]:
        parts.append(scene.pose)
    if scene.face_visible and keep["expression"]:
        parts.append(scene.expression)
    if keep["background"]:
        parts.append(f"{scene.background} background")
    return ", ".join(parts)


def scene_prompt(prefix: str, scene: Scene) -> str:
    """A prompt for a taught character: '<prefix>, arms up, sad, white background'."""
    return ", ".join([prefix, *describe_scene(scene)])
