"""Test-time augmentation: weighted views of an evaluation batch whose logits are summed.
A view keeps every image's shape, so one forward pass serves each view of a whole batch; the
weights of an entry's views sum to 1."""

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from registry import Probability, Registry
from search.training.preprocess import in_format_of

Views = list[tuple[float, torch.Tensor]]
ViewMaker = Callable[[torch.Tensor], Views]
TTA: Registry[Callable[..., Views]] = Registry("test-time augmentation", supplied=("images",))


def translate(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Shift [N, C, H, W] by `pixels` down and right (up and left if negative), filling the
    edge by reflection, as airbench's translate view does; laid out as `images` are (a slice
    of the padded batch would give the network, and torch.compile, other strides)."""
    shift = abs(pixels)
    padded = nn.functional.pad(images, (shift,) * 4, mode="reflect")
    start = shift - pixels
    view = padded[..., start : start + images.shape[-2], start : start + images.shape[-1]]
    return in_format_of(images, view)


@TTA.register("none")
def plain(images: torch.Tensor) -> Views:
    return [(1.0, images)]


@TTA.register("mirror")
def mirror(images: torch.Tensor) -> Views:
    return [(0.5, images), (0.5, images.flip(-1))]


@TTA.register("mirror_translate")
def mirror_translate(images: torch.Tensor, translate_weight: Probability = 0.5) -> Views:
    """The mirror pair, and the mirror pairs of the image shifted one pixel diagonally each
    way, those four sharing `translate_weight` of the total (airbench94: 0.5, so each shifted
    view weighs 0.125 and each unshifted one 0.25)."""
    shifted = [(weight * translate_weight / 2, view)
               for pixels in (1, -1) for weight, view in mirror(translate(images, pixels))]  # fmt: skip
    unshifted = [(weight * (1 - translate_weight), view) for weight, view in mirror(images)]
    return unshifted + shifted


def build(name: str, arguments: Mapping[str, Any] | None = None) -> ViewMaker:
    """A config's `tta` with its `tta_args`: normalised images -> their weighted views."""
    return functools.partial(TTA[name], **(arguments or {}))
