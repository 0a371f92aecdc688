"""Contact sheets: a grid of images with a caption under each."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw, ImageFont


def contact_sheet(
    images: list[Image.Image], labels: list[str] | None = None, *, columns: int | None = None, cell: int = 256, pad: int = 6
) -> Image.Image:
    if not images:
        raise ValueError("no images for a contact sheet")
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    label_h = 14 if labels else 0
    sheet = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell + pad + label_h) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        x, y = pad + c * (cell + pad), pad + r * (cell + pad + label_h)
        sheet.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.LANCZOS), (x, y))
        if labels:
            text = labels[i]
            while text and draw.textlength(text, font=font) > cell:
                text = text[:-2] + "…"
            draw.text((x, y + cell + 1), text, fill="black", font=font)
    return sheet
