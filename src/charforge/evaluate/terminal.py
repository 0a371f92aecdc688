"""Pictures in a terminal, for rating without a window: upper-half blocks with 24-bit colours (two
pixel rows per text row), which every modern terminal emulator shows."""

from __future__ import annotations

from PIL import Image

from ..generate.sheet import contact_sheet


def side_by_side(image: Image.Image, references: list[Image.Image], cell: int = 384) -> Image.Image:
    """The picture to rate at a readable size, beside a grid of the references at half that size (also saved for an
    image viewer): a strip of every reference at full size was thousands of pixels wide and unreadable."""
    small = max(32, cell // 2)
    columns = max(1, min(3, len(references)))
    grid = contact_sheet(references, [f"reference {i + 1}" for i in range(len(references))], columns=columns, cell=small)
    picture = contact_sheet([image], ["rate this"], columns=1, cell=cell)
    out = Image.new("RGB", (picture.width + grid.width, max(picture.height, grid.height)), "white")
    out.paste(picture, (0, 0))
    out.paste(grid, (picture.width, 0))
    return out


def half_blocks(image: Image.Image, width: int = 48) -> str:
    """``image`` as ANSI text ``width`` characters wide."""
    height = max(2, round(image.height * width / image.width / 2) * 2)
    pixels = image.convert("RGB").resize((width, height), Image.Resampling.BOX).load()
    lines = []
    for y in range(0, height, 2):
        cells = []
        for x in range(width):
            (r1, g1, b1), (r2, g2, b2) = pixels[x, y], pixels[x, y + 1]
            cells.append(f"\x1b[38;2;{r1};{g1};{b1}m\x1b[48;2;{r2};{g2};{b2}m\u2580")
        lines.append("".join(cells) + "\x1b[0m")
    return "\n".join(lines)
