"""Augmentations of whole batches on the device (airbench style): one function per transform.

Each takes normalised float images [B, C, H, W] and a torch.Generator on the same device, and
returns a batch of the same shape. Random choices are made per image with tensor ops, so the
training step stays free of per-sample Python work and host syncs. torchvision's v2
transforms draw one set of parameters per call, i.e. per batch, which is why these are ours.
Mixing augmentations (mixup, cutmix) also take and return the soft targets [B, classes]. One
that takes a `batch` argument also gets the BatchInfo: which training images these are and
the epoch, for choices that hold per image across epochs (airbench's alternating flip).
"""

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from registry import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    Registry,
    UsageError,
)
from search.training.preprocess import in_format_of


@dataclasses.dataclass(frozen=True)
class BatchInfo:
    """Where a batch comes from: its images' indices in the training set, the epoch (from 1),
    and one uniform random number per training image drawn once per run (per-image choices
    that last the whole run)."""

    indices: torch.Tensor
    epoch: int
    per_image: torch.Tensor

    @classmethod
    def draw(cls, images: int, generator: torch.Generator) -> "BatchInfo":
        """The run's per-image numbers, before any batch (indices empty, epoch 0)."""
        device = generator.device
        per_image = torch.rand(images, device=device, generator=generator)
        return cls(torch.empty(0, dtype=torch.long, device=device), 0, per_image)

    def of(self, indices: torch.Tensor, epoch: int) -> "BatchInfo":
        return dataclasses.replace(self, indices=indices, epoch=epoch)


Augmentation = Callable[
    [torch.Tensor, torch.Tensor, torch.Generator, BatchInfo], tuple[torch.Tensor, torch.Tensor]
]
AUGMENTATIONS: Registry = Registry("augmentation", supplied=("images", "generator", "batch"))
MIXINGS: Registry = Registry("augmentation", supplied=("images", "targets", "generator"))

PAD_MODES = {"reflect": "reflect", "zeros": "constant"}


def _uniform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(images.shape[0], device=images.device, generator=generator)


def _offsets(
    images: torch.Tensor, generator: torch.Generator, high_rows: int, high_cols: int
) -> torch.Tensor:
    """One (row, column) per image, integers in [0, high_rows] and [0, high_cols]: one draw
    for the whole batch when the two ranges agree (square images), as they do on CIFAR."""
    if high_rows == high_cols:
        shape = (images.shape[0], 2)
        return torch.randint(0, high_rows + 1, shape, device=images.device, generator=generator)
    return torch.stack([_offsets(images, generator, high, high)[:, 0]
                        for high in (high_rows, high_cols)], 1)  # fmt: skip


@AUGMENTATIONS.register("flip")
def batch_flip_lr(
    images: torch.Tensor, generator: torch.Generator, p: Probability = 0.5
) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    flipped = _uniform(images, generator) < p
    return torch.where(flipped[:, None, None, None], images.flip(-1), images)


@AUGMENTATIONS.register("alternating_flip")
def batch_flip_alternating(
    images: torch.Tensor, generator: torch.Generator, batch: BatchInfo, p: Probability = 0.5
) -> torch.Tensor:
    """airbench94's flip: a random `p` of the training images is mirrored in the first epoch,
    and every image shows the other side in the next, alternating; a model sees both sides of
    each image every two epochs, where random flips leave some unseen for longer."""
    first_side = batch.per_image[batch.indices] < p
    flipped = first_side ^ (batch.epoch % 2 == 0)
    return torch.where(flipped[:, None, None, None], images.flip(-1), images)


@functools.cache
def _positions(size: int, device: torch.device) -> torch.Tensor:
    """0 .. size-1 on the device, made once per size: the crops and squares below index with
    it every step, and an arange is a kernel launch each time."""
    return torch.arange(size, device=device)


@AUGMENTATIONS.register("crop")
def batch_crop(
    images: torch.Tensor,
    generator: torch.Generator,
    padding: NonNegativeInt = 4,
    mode: str = "reflect",
) -> torch.Tensor:
    """Random crop of the original size from the image padded by `padding` pixels per side
    (a random translation by up to `padding` pixels); `mode` is reflect or zeros."""
    if padding == 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4, mode=PAD_MODES[mode])
    shift = _offsets(images, generator, 2 * padding, 2 * padding)
    rows = shift[:, 0, None] + _positions(height, images.device)
    cols = shift[:, 1, None] + _positions(width, images.device)
    # One gather of whole pixels (all channels at once) in [B, H, W, C] order: channels_last's
    # own, so a channels_last batch is cropped without a layout change.
    pixels = padded.permute(0, 2, 3, 1)
    picked = pixels[_positions(batch, images.device)[:, None, None], rows[:, :, None],
                    cols[:, None, :]]  # fmt: skip
    return picked.permute(0, 3, 1, 2)


@AUGMENTATIONS.register("cutout")
def batch_cutout(
    images: torch.Tensor, generator: torch.Generator, size: NonNegativeInt = 8
) -> torch.Tensor:
    """Zero (the mean colour, after normalisation) one size x size square per image, placed
    uniformly so that it lies wholly inside the image (DeVries & Taylor, 2017)."""
    batch, _, height, width = images.shape
    size = min(size, height, width)
    corner = _offsets(images, generator, height - size, width - size)
    rows = _positions(height, images.device) - corner[:, 0, None]
    cols = _positions(width, images.device) - corner[:, 1, None]
    square = ((rows >= 0) & (rows < size))[:, :, None] & ((cols >= 0) & (cols < size))[:, None]
    return images.masked_fill(square[:, None], 0.0)


@AUGMENTATIONS.register("vflip")
def batch_flip_ud(
    images: torch.Tensor, generator: torch.Generator, p: Probability = 0.5
) -> torch.Tensor:
    """Turn each image upside down with probability p."""
    flipped = _uniform(images, generator) < p
    return torch.where(flipped[:, None, None, None], images.flip(-2), images)


@AUGMENTATIONS.register("grayscale")
def batch_grayscale(
    images: torch.Tensor, generator: torch.Generator, p: Probability = 0.2
) -> torch.Tensor:
    """Replace each image by its channel mean with probability p (on normalised values, so a
    grey image stays near the dataset's mean colour)."""
    chosen = _uniform(images, generator) < p
    grey = images.mean(1, keepdim=True).expand_as(images)
    return torch.where(chosen[:, None, None, None], grey, images)


@AUGMENTATIONS.register("mask")
def batch_mask(
    images: torch.Tensor, generator: torch.Generator, block: PositiveInt = 4, p: Probability = 0.25
) -> torch.Tensor:
    """Zero each block x block square of each image with probability p (report 000's random
    4x4 / 2x2 / 1x1 masking)."""
    batch, _, height, width = images.shape
    rows, cols = -(-height // block), -(-width // block)
    keep = torch.rand(batch, 1, rows, cols, device=images.device, generator=generator) >= p
    keep = keep.repeat_interleave(block, 2).repeat_interleave(block, 3)[:, :, :height, :width]
    return images * keep


def _signed(images: torch.Tensor, generator: torch.Generator, limit: float) -> torch.Tensor:
    """One value in [-limit, limit] per image."""
    return (2 * _uniform(images, generator) - 1) * limit


@AUGMENTATIONS.register("affine")
def batch_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    degrees: NonNegativeFloat = 15.0,
    translate: Probability = 0.1,
    scale_low: PositiveFloat = 0.9,
    scale_high: PositiveFloat = 1.1,
    shear: NonNegativeFloat = 0.0,
) -> torch.Tensor:
    """Rotate by up to `degrees`, shift by up to `translate` of the size, zoom by a factor in
    [scale_low, scale_high] and shear by up to `shear` degrees, per image; uncovered pixels
    take the mean colour (0 after normalisation)."""
    angle = torch.deg2rad(_signed(images, generator, degrees))
    shear_tan = torch.tan(torch.deg2rad(_signed(images, generator, shear)))
    zoom = scale_low + (scale_high - scale_low) * _uniform(images, generator)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output to input coordinates in [-1, 1]: dividing by the zoom enlarges.
    theta = torch.stack(
        [
            torch.stack([cos, cos * shear_tan - sin, 2 * _signed(images, generator, translate)], 1),
            torch.stack([sin, sin * shear_tan + cos, 2 * _signed(images, generator, translate)], 1),
        ],
        1,
    )
    theta[:, :, :2] /= zoom[:, None, None]
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return _sample_grid(images, grid)


@AUGMENTATIONS.register("rotate")
def batch_rotate(
    images: torch.Tensor, generator: torch.Generator, degrees: NonNegativeFloat = 15.0
) -> torch.Tensor:
    """Rotate each image by a random angle in [-degrees, degrees]."""
    return batch_affine(images, generator, degrees, 0.0, 1.0, 1.0, 0.0)


def _sample_grid(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Resample images at grid ([B, H, W, 2], coordinates in [-1, 1]); outside is the mean
    colour (0 after normalisation)."""
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=False)  # fmt: skip


@AUGMENTATIONS.register("resized_crop")
def batch_resized_crop(
    images: torch.Tensor,
    generator: torch.Generator,
    scale_low: Fraction = 0.08,
    ratio_low: PositiveFloat = 3 / 4,
    ratio_high: PositiveFloat = 4 / 3,
) -> torch.Tensor:
    """torchvision's RandomResizedCrop per image (report 004): a crop of a random area
    fraction in [scale_low, 1] and aspect ratio in [ratio_low, ratio_high] (log-uniform),
    clipped to the image, resized back to the full size."""
    area = scale_low + (1 - scale_low) * _uniform(images, generator)
    log_low, log_high = math.log(ratio_low), math.log(ratio_high)
    ratio = torch.exp(log_low + (log_high - log_low) * _uniform(images, generator))
    width = (area * ratio).sqrt().clamp(max=1.0)  # fractions of the image's sides
    height = (area / ratio).sqrt().clamp(max=1.0)
    # centres where the crop fits; affine_grid maps output to input coordinates in [-1, 1]
    centre_x = (1 - width) * (2 * _uniform(images, generator) - 1)
    centre_y = (1 - height) * (2 * _uniform(images, generator) - 1)
    zeros = torch.zeros_like(width)
    theta = torch.stack([torch.stack([width, zeros, centre_x], 1),
                         torch.stack([zeros, height, centre_y], 1)], 1)  # fmt: skip
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return _sample_grid(images, grid)


@AUGMENTATIONS.register("perspective")
def batch_perspective(
    images: torch.Tensor,
    generator: torch.Generator,
    distortion: Probability = 0.5,
    p: Probability = 0.5,
) -> torch.Tensor:
    """torchvision's RandomPerspective per image (report 004): with probability p, each corner
    moves inwards by up to `distortion` of half the side, and the image is warped by the
    homography that takes the corners there."""
    batch = images.shape[0]
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]],
                           device=images.device)  # fmt: skip
    shift = torch.rand(batch, 4, 2, device=images.device, generator=generator) * distortion
    chosen = (_uniform(images, generator) < p).to(shift.dtype)[:, None, None]
    moved = corners - corners.sign() * shift * chosen  # output corner -> where it samples from
    # The homography H with H(corner) = moved, for each image: 8 unknowns, 8 equations.
    x, y = corners[:, 0].expand(batch, 4), corners[:, 1].expand(batch, 4)
    u, v = moved[..., 0], moved[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    system = torch.cat([rows_u, rows_v], 1)  # [B, 8, 8]
    # solve_ex without its error check: solve's check reads the result's status on the host,
    # a wait for the GPU in every step (the system is never singular: moved corners stay in
    # their own quadrants).
    solution = torch.linalg.solve_ex(system, torch.cat([u, v], 1), check_errors=False).result
    homography = torch.cat([solution, torch.ones(batch, 1, device=images.device)], 1)
    height, width = images.shape[-2:]
    ys = (torch.arange(height, device=images.device) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, device=images.device) + 0.5) / width * 2 - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], -1).view(1, -1, 3)
    mapped = points @ homography.view(batch, 3, 3).transpose(1, 2)  # [B, H*W, 3]
    grid = (mapped[..., :2] / mapped[..., 2:]).view(batch, height, width, 2)
    return _sample_grid(images, grid)


@AUGMENTATIONS.register("jitter")
def batch_color_jitter(
    images: torch.Tensor,
    generator: torch.Generator,
    brightness: NonNegativeFloat = 0.2,
    contrast: NonNegativeFloat = 0.2,
    saturation: NonNegativeFloat = 0.2,
) -> torch.Tensor:
    """Colour jitter per image, in normalised units: shift all channels by up to `brightness`
    standard deviations, scale the distance from the image's mean by 1 +/- `contrast`, and
    from its grey version by 1 +/- `saturation`."""
    per_image = (images.shape[0], 1, 1, 1)
    images = images + _signed(images, generator, brightness).view(per_image)
    mean = images.mean((1, 2, 3), keepdim=True)
    images = mean + (images - mean) * (1 + _signed(images, generator, contrast)).view(per_image)
    grey = images.mean(1, keepdim=True)
    return grey + (images - grey) * (1 + _signed(images, generator, saturation)).view(per_image)


def _partners(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(images.shape[0], device=images.device, generator=generator)


def _beta(images: torch.Tensor, alpha: float) -> torch.Tensor:
    """One Beta(alpha, alpha) draw per image. torch's Beta takes no generator: it draws from
    the global one, which the trainer seeds, so runs stay reproducible. The concentration is
    filled on the device and not validated: a copy from the host or a check of its values
    would make every step wait for the GPU."""
    concentration = torch.full((images.shape[0],), float(alpha), device=images.device)
    return torch.distributions.Beta(concentration, concentration, validate_args=False).sample()


@MIXINGS.register("mixup")
def batch_mixup(
    images: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    alpha: PositiveFloat = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zhang et al. (2018): blend each image and its target with a random partner's, with a
    weight drawn from Beta(alpha, alpha) per image."""
    weight = _beta(images, alpha)
    partner = _partners(images, generator)
    mixed = torch.lerp(images[partner], images, weight.view(-1, 1, 1, 1).to(images.dtype))
    return mixed, torch.lerp(targets[partner], targets, weight[:, None].to(targets.dtype))


@MIXINGS.register("cutmix")
def batch_cutmix(
    images: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    alpha: PositiveFloat = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Yun et al. (2019): paste a box of a random partner into each image, the box's area
    fraction drawn from Beta(alpha, alpha); targets mix by the area actually pasted (the box
    is clipped at the border)."""
    height, width = images.shape[-2:]
    side = (1 - _beta(images, alpha)).sqrt()
    centre_row = _uniform(images, generator) * height
    centre_col = _uniform(images, generator) * width
    top = (centre_row - side * height / 2).round().clamp(0, height)[:, None]
    bottom = (centre_row + side * height / 2).round().clamp(0, height)[:, None]
    left = (centre_col - side * width / 2).round().clamp(0, width)[:, None]
    right = (centre_col + side * width / 2).round().clamp(0, width)[:, None]
    rows = torch.arange(height, device=images.device)[None, :]
    cols = torch.arange(width, device=images.device)[None, :]
    box = ((rows >= top) & (rows < bottom))[:, :, None] & ((cols >= left) & (cols < right))[:, None]
    partner = _partners(images, generator)
    pasted = box.flatten(1).float().mean(1)[:, None].to(targets.dtype)
    mixed = torch.where(box[:, None], images[partner], images)
    return mixed, torch.lerp(targets, targets[partner], pasted)


def _lookup(name: str) -> Registry:
    for registry in (AUGMENTATIONS, MIXINGS):
        if name in registry:
            return registry
    raise UsageError(f"unknown augmentation '{name}'; choose one of: {', '.join(names())}")


def names() -> list[str]:
    return sorted(AUGMENTATIONS.names() + MIXINGS.names())


def check_arguments(
    name: str, arguments: Mapping[str, Any], path: str = "arguments"
) -> dict[str, Any]:
    return _lookup(name).check_arguments(name, arguments, path)


def _as_step(name: str, arguments: Mapping[str, Any]) -> Augmentation:
    """One augmentation as a pipeline step, its arguments and its use of BatchInfo decided
    here, once, not per batch."""
    registry = _lookup(name)
    function = partial(registry[name], **arguments)
    if registry is MIXINGS:
        return lambda images, targets, generator, batch: function(images, targets, generator)
    if "batch" in inspect.signature(registry[name]).parameters:
        return lambda images, targets, generator, batch: (
            function(images, generator, batch),
            targets,
        )
    return lambda images, targets, generator, batch: (function(images, generator), targets)


def mixes(spec: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether the augmentations named mix images, and so their targets."""
    return any(name in MIXINGS for name in spec)


def build(spec: Mapping[str, Mapping[str, Any]]) -> Augmentation:
    """Compose the augmentations named in a TrialConfig's `augment`, in the order given:
    (images, targets, generator, BatchInfo) -> (images, targets); only mixing steps touch the
    targets, which are then soft ([B, classes]). Each step's images come out in the memory
    format they went in (channels_last from the trainer; grid_sample and indexing may return
    another): a no-op where the step kept it."""
    steps = [_as_step(name, arguments or {}) for name, arguments in spec.items()]

    def augment(
        images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, batch: BatchInfo
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for step in steps:
            augmented, targets = step(images, targets, generator, batch)
            images = in_format_of(images, augmented)
        return images, targets

    return augment
