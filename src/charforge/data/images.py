"""Load any image a user hands us and make it a clean RGB picture to train on.

Artists' files come in every colour mode: transparent PNGs (flattened onto white, as in the thesis
data, because a diffusion model has no alpha channel), EXIF-rotated phone photos, palette GIFs,
16-bit scans and CMYK exports. Each is handled here; files that are not images, are corrupt or too
small raise :class:`ImageProblem` naming the file and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIDE = 64


class ImageProblem(ValueError):
    """One file cannot be used; ``reason`` says why in a few words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _to_8bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit greyscale ('I;16', 'I', 'F') are scaled to 0-255 from their real range."""
    array = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
    return Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any mode to RGB; transparency is composited onto ``background``."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    return image.convert("RGB")


def to_srgb(image: Image.Image) -> Image.Image:
    """Convert an embedded ICC profile (Adobe RGB, Display P3, CMYK press profiles...) to sRGB.

    Training images and generated ones are read as sRGB; colours from another space would shift.
    """
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    from io import BytesIO

    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: keep the pixels as they are rather than refuse the drawing
    return converted or image


def load_image(path: str | Path, *, min_side: int = MIN_SIDE, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Open, validate, EXIF-rotate, convert to sRGB and to RGB (transparency onto ``background``)."""
    path = Path(path)
    try:
        with Image.open(path) as probe:
            probe.verify()  # catches truncated and corrupt files before we decode them
        with Image.open(path) as opened:
            opened.seek(0)  # first frame of a GIF / multi-page TIFF
            image = ImageOps.exif_transpose(opened)
            image.load()
    except UnidentifiedImageError as exc:
        if path.suffix.lower() in (".svg", ".svgz"):
            raise ImageProblem(
                path, "SVG is not supported: export it as a PNG at 1024 px or more (e.g. inkscape IN.svg -o OUT.png -w 1024)"
            ) from exc
        raise ImageProblem(path, "not an image file") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(path, f"corrupt or truncated image ({exc})") from exc
    if min(image.size) < min_side:
        raise ImageProblem(path, f"too small ({image.width}x{image.height}); needs at least {min_side} px per side")
    return to_rgb(to_srgb(image), background)


def to_tensor(image: Image.Image):  # -> torch.Tensor, shape (3, H, W) in [-1, 1]
    import torch

    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()
