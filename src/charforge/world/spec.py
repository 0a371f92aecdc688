"""World specs: a YAML file naming a character and the scenes to draw it in.

```yaml
character: {hair_colour: pink, hair_style: short, outfit_colour: blue, outfit_type: onesie, accessory: unicorn horn}
scenes:
  - {pose: arms up, expression: sad, background: white}
```
Unknown attribute names or values are errors that list the valid ones.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CharforgeError
from ..options import read_yaml
from .attributes import REFERENCE_SCENES, SCENE_VALUES, Character, Scene, caption, check_value, held_out
from .render import render


def read_spec(path: Path) -> tuple[Character, list[Scene]]:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise CharforgeError(f"{path}: expected a mapping with 'character' and 'scenes'")
    unknown = set(data) - {"character", "scenes"}
    if unknown:
        raise CharforgeError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; valid: character, scenes")
    where = str(path)
    character = Character.from_dict({str(k).replace("-", "_"): v for k, v in (data.get("character") or {}).items()}, where)
    scenes = []
    for i, item in enumerate(data.get("scenes") or [{}]):
        if not isinstance(item, dict):
            raise CharforgeError(f"{path}: scenes[{i}] must be a mapping of pose/expression/background")
        for key, value in item.items():
            if key not in SCENE_VALUES:
                raise CharforgeError(
                    f"{path}: scenes[{i}]: unknown attribute {key!r}; valid attributes: {', '.join(SCENE_VALUES)}"
                )
            check_value(key, str(value), f"{path}: scenes[{i}]")
        scenes.append(Scene(**{k: str(v) for k, v in item.items()}))
    return character, scenes


def render_to_folder(out: Path, *, character: str | None, spec: Path | None, size: int = 256) -> list[Path]:
    if (character is None) == (spec is None):
        raise CharforgeError("give either --character NAME or --spec FILE")
    if character is not None:
        who, scenes, stem = held_out(character), list(REFERENCE_SCENES), character
    else:
        assert spec is not None
        who, scenes = read_spec(spec)
        stem = spec.stem
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scene in enumerate(scenes):
        path = out / f"{stem}-{i}-{scene.pose.replace(' ', '-')}.png"
        render(who, scene, size, seed=100 + i).save(path)
        path.with_suffix(".txt").write_text(caption(who, scene) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
