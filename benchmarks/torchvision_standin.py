"""Stand-in for the few torchvision transforms the diffusers reference script imports.

PIL/torch equivalents of torchvision.transforms.{Compose, Resize, CenterCrop, RandomCrop,
RandomHorizontalFlip, ToTensor, Normalize, InterpolationMode} and torchvision.transforms.functional.crop (the
SD3 and FLUX scripts'). There is no CPU build of torchvision on our machines; ``_step_timer`` registers this
module as ``torchvision.transforms`` for the reference script only, after transformers has decided torchvision
is absent (so it never reaches for the rest of torchvision). Benchmarks only; charforge never uses it.
"""

from __future__ import annotations

import enum
import random

import numpy as np
import torch
from PIL import Image


class InterpolationMode(enum.Enum):
    NEAREST = Image.Resampling.NEAREST
    BILINEAR = Image.Resampling.BILINEAR
    BICUBIC = Image.Resampling.BICUBIC
    LANCZOS = Image.Resampling.LANCZOS
    BOX = Image.Resampling.BOX
    HAMMING = Image.Resampling.HAMMING


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Resize:
    """Shorter side to ``size``, as torchvision does for an int size."""

    def __init__(self, size, interpolation=InterpolationMode.BILINEAR):
        self.size, self.interpolation = size, interpolation

    def __call__(self, image):
        w, h = image.size
        scale = self.size / min(w, h)
        return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), self.interpolation.value)


class CenterCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, image):
        w, h = image.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        return image.crop((left, top, left + self.size, top + self.size))


class RandomCrop(CenterCrop):
    def __call__(self, image):
        w, h = image.size
        left, top = random.randint(0, w - self.size), random.randint(0, h - self.size)
        return image.crop((left, top, left + self.size, top + self.size))


class ToTensor:
    def __call__(self, image):
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean[0], std[0]

    def __call__(self, x):
        return (x - self.mean) / self.std


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image):
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if random.random() < self.p else image


class functional:  # noqa: N801 - stands in for the module torchvision.transforms.functional
    @staticmethod
    def crop(image, top: int, left: int, height: int, width: int):
        return image.crop((left, top, left + width, top + height))

    @staticmethod
    def resize(image, size, interpolation=InterpolationMode.BILINEAR):
        """``size``: [height, width], or the shorter side as an int."""
        if isinstance(size, int):
            return Resize(size, interpolation)(image)
        return image.resize((size[1], size[0]), interpolation.value)

    @staticmethod
    def center_crop(image, size):
        h, w = (size, size) if isinstance(size, int) else size
        left, top = (image.size[0] - w) // 2, (image.size[1] - h) // 2
        return image.crop((left, top, left + w, top + h))

    @staticmethod
    def hflip(image):
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    @staticmethod
    def to_tensor(image):
        return ToTensor()(image)

    @staticmethod
    def normalize(x, mean, std):
        return Normalize(mean, std)(x)
