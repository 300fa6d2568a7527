"""Test-time augmentation: the views of an evaluation batch whose logits are averaged.
A view keeps every image's shape, so one forward pass serves each view of a whole batch."""

from collections.abc import Callable

import torch
from torch import nn

from search.registry import Registry

TTA: Registry[Callable[[torch.Tensor], list[torch.Tensor]]] = Registry("test-time augmentation")


def translate(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Shift [N, C, H, W] by `pixels` down and right (up and left if negative), filling the
    edge by reflection, as airbench's translate view does."""
    shift = abs(pixels)
    padded = nn.functional.pad(images, (shift,) * 4, mode="reflect")
    start = shift - pixels
    return padded[..., start : start + images.shape[-2], start : start + images.shape[-1]]


@TTA.register("none")
def plain(images: torch.Tensor) -> list[torch.Tensor]:
    return [images]


@TTA.register("mirror")
def mirror(images: torch.Tensor) -> list[torch.Tensor]:
    return [images, images.flip(-1)]


@TTA.register("mirror_translate")
def mirror_translate(images: torch.Tensor) -> list[torch.Tensor]:
    """Each mirror view, also shifted one pixel diagonally each way: six views."""
    return [view for shifted in (0, 1, -1) for view in mirror(translate(images, shifted))]
