"""Augmentations of whole batches on the device (airbench style): one function per transform.

Each takes normalised float images [B, C, H, W] and a torch.Generator on the same device, and
returns a batch of the same shape. Random choices are made per image with tensor ops, so the
training step stays free of per-sample Python work and host syncs.
"""

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from search.registry import Registry

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
AUGMENTATIONS: Registry = Registry("augmentation", supplied=("images", "generator"))

PAD_MODES = {"reflect": "reflect", "zeros": "constant"}


def _uniform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(images.shape[0], device=images.device, generator=generator)


def _offsets(images: torch.Tensor, generator: torch.Generator, high: int) -> torch.Tensor:
    """One integer in [0, high] per image."""
    shape = (images.shape[0],)
    return torch.randint(0, high + 1, shape, device=images.device, generator=generator)


@AUGMENTATIONS.register("flip")
def batch_flip_lr(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flipped = _uniform(images, generator) < p
    return torch.where(flipped[:, None, None, None], images.flip(-1), images)


@AUGMENTATIONS.register("crop")
def batch_crop(
    images: torch.Tensor, generator: torch.Generator, padding: int = 4, mode: str = "reflect"
) -> torch.Tensor:
    """Random crop of the original size from the image padded by `padding` pixels per side
    (a random translation by up to `padding` pixels); `mode` is reflect or zeros."""
    if padding == 0:
        return images
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding,) * 4, mode=PAD_MODES[mode])
    rows = _offsets(images, generator, 2 * padding)[:, None] + torch.arange(
        height, device=images.device
    )
    cols = _offsets(images, generator, 2 * padding)[:, None] + torch.arange(
        width, device=images.device
    )
    batch_index = torch.arange(batch, device=images.device)[:, None, None, None]
    channel_index = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]


@AUGMENTATIONS.register("cutout")
def batch_cutout(images: torch.Tensor, generator: torch.Generator, size: int = 8) -> torch.Tensor:
    """Zero (the mean colour, after normalisation) one size x size square per image, placed
    uniformly so that it lies wholly inside the image (DeVries & Taylor, 2017)."""
    height, width = images.shape[-2:]
    size = min(size, height, width)
    top = _offsets(images, generator, height - size)[:, None]
    left = _offsets(images, generator, width - size)[:, None]
    rows = torch.arange(height, device=images.device)[None, :]
    cols = torch.arange(width, device=images.device)[None, :]
    in_rows = (rows >= top) & (rows < top + size)
    in_cols = (cols >= left) & (cols < left + size)
    square = in_rows[:, :, None] & in_cols[:, None, :]
    return images.masked_fill(square[:, None], 0.0)


@AUGMENTATIONS.register("vflip")
def batch_flip_ud(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Turn each image upside down with probability p."""
    flipped = _uniform(images, generator) < p
    return torch.where(flipped[:, None, None, None], images.flip(-2), images)


@AUGMENTATIONS.register("grayscale")
def batch_grayscale(
    images: torch.Tensor, generator: torch.Generator, p: float = 0.2
) -> torch.Tensor:
    """Replace each image by its channel mean with probability p (on normalised values, so a
    grey image stays near the dataset's mean colour)."""
    chosen = _uniform(images, generator) < p
    grey = images.mean(1, keepdim=True).expand_as(images)
    return torch.where(chosen[:, None, None, None], grey, images)


@AUGMENTATIONS.register("mask")
def batch_mask(
    images: torch.Tensor, generator: torch.Generator, block: int = 4, p: float = 0.25
) -> torch.Tensor:
    """Zero each block x block square of each image with probability p (report 000's random
    4x4 / 2x2 / 1x1 masking)."""
    batch, _, height, width = images.shape
    rows, cols = -(-height // block), -(-width // block)
    keep = torch.rand(batch, 1, rows, cols, device=images.device, generator=generator) >= p
    keep = keep.repeat_interleave(block, 2).repeat_interleave(block, 3)[:, :, :height, :width]
    return images * keep


def build(spec: Mapping[str, Mapping[str, Any]]) -> Augmentation:
    """Compose the augmentations named in a TrialConfig's `augment`, in the order given."""
    steps = [partial(AUGMENTATIONS[name], **(arguments or {})) for name, arguments in spec.items()]

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in steps:
            images = step(images, generator)
        return images

    return augment
