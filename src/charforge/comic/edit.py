"""Small edits to a storyboard's text that keep the rest of it (comments, order, quoting) as the author wrote it.

The web UI's "send to a comic panel" puts a generated picture into panel N: the panel gets ``image: PATH``
(relative to the storyboard where it can be), which the renderer uses instead of drawing one.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .. import atomic
from ..errors import CharforgeError
from .schema import parse_storyboard


def _panel_nodes(root: yaml.Node) -> list[yaml.MappingNode]:
    def value(node: yaml.Node, key: str) -> yaml.Node | None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    return v
        return None

    pages = value(root, "pages")
    page_nodes = pages.value if isinstance(pages, yaml.SequenceNode) else [root]
    out = []
    for page in page_nodes:
        panels = value(page, "panels")
        if isinstance(panels, yaml.SequenceNode):
            out.extend(panels.value)
    return out


def set_panel_image(story: str | Path, panel: int, image: str | Path) -> Path:
    """Make panel ``panel`` (1-based, counted over all pages) use ``image``; the file is rewritten atomically and
    only if the result is still a valid storyboard."""
    story = Path(story)
    if not story.is_file():
        raise CharforgeError(f"{story}: no such storyboard")
    text = story.read_text(encoding="utf-8")
    text = text if text.endswith("\n") else text + "\n"
    parse_storyboard(text, str(story))  # a broken storyboard is fixed by hand first
    nodes = _panel_nodes(yaml.compose(text))
    if not 1 <= panel <= len(nodes):
        raise CharforgeError(f"{story}: panel {panel} does not exist (it has panels 1 to {len(nodes)})")
    node = nodes[panel - 1]
    if not isinstance(node, yaml.MappingNode) or node.flow_style or not node.value:
        raise CharforgeError(
            f"{story}: panel {panel} is written on one line ({{...}}); write it as a block to send a picture to it"
        )
    image = Path(image).resolve()
    try:
        shown = Path(os.path.relpath(image, story.parent.resolve())).as_posix()
    except ValueError:  # another drive
        shown = image.as_posix()
    entry = f"image: {yaml.safe_dump(shown, default_flow_style=True).strip().removesuffix('...').strip()}"
    lines = text.splitlines(keepends=True)
    existing = next(((k, v) for k, v in node.value if k.value == "image"), None)
    if existing is not None:
        key, value = existing
        line = lines[key.start_mark.line]
        lines[key.start_mark.line] = line[: key.start_mark.column] + entry + line[value.end_mark.column :]
    else:
        first_key = node.value[0][0]
        indent = " " * first_key.start_mark.column
        mark = node.end_mark  # where the next item starts: its line, unless the panel's own text runs up to it
        at_start = mark.line >= len(lines) or not lines[mark.line][: mark.column].strip()
        end = mark.line if at_start else mark.line + 1
        while end > first_key.start_mark.line + 1 and not lines[end - 1].strip():  # after the panel's last text line
            end -= 1
        lines.insert(end, f"{indent}{entry}\n")
    new_text = "".join(lines)
    parse_storyboard(new_text, str(story))
    atomic.write_text(story, new_text)
    return story
