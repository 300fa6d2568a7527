"""How a network takes its images: uint8 from the device-resident dataset, normalised by the
training images' channel statistics, resized to the config's input size, channels_last (on
every device: cuDNN's bf16 convolutions and oneDNN's on the CPU are both faster in it; the
augmentations keep it), and under bf16 autocast on CUDA. The trainer, the retrain report,
search.predict and the latency objective all go through one Preprocess, so a checkpoint sees
what its training saw."""

import dataclasses
from collections.abc import Callable

import torch
from torch import nn


def channel_statistics(images: torch.Tensor) -> dict[str, list[float]]:
    """Per-channel mean and standard deviation of uint8 [N, C, H, W] images, in [0, 1] units."""
    pixels = images.transpose(0, 1).flatten(1).float() / 255
    return {"mean": pixels.mean(1).tolist(), "std": pixels.std(1).tolist()}


MEMORY_FORMAT = torch.channels_last  # of every image batch and network: see the docstring


def in_format_of(like: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` laid out in memory as `like` is, channels_last or contiguous: a no-op (no copy)
    when it already is, so that an augmentation or a view hands the network the layout it was
    built for, and torch.compile sees the same strides every step."""
    channels_last = like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last)
    return tensor.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )


def make_normalizer(
    statistics: dict[str, list[float]], on_device: torch.device, image_size: int = 0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 [B, C, H, W] -> normalised float32, resized to image_size x image_size if given
    (report 004 trained on CIFAR upsampled to STL-10's 96x96), channels_last."""
    mean = torch.tensor(statistics["mean"], device=on_device).view(1, -1, 1, 1)
    std = torch.tensor(statistics["std"], device=on_device).view(1, -1, 1, 1)
    size = (image_size, image_size) if image_size else None

    def normalize(images: torch.Tensor) -> torch.Tensor:
        normalized = (images.float() / 255 - mean) / std
        if size is not None and normalized.shape[-2:] != size:
            normalized = nn.functional.interpolate(
                normalized, size=size, mode="bilinear", antialias=True, align_corners=False
            )
        return normalized.contiguous(memory_format=MEMORY_FORMAT)

    return normalize


def make_autocast(on_device: torch.device) -> torch.autocast:
    """bf16 on CUDA (tensor cores, no loss scaling needed); plain fp32 on the CPU."""
    return torch.autocast(on_device.type, dtype=torch.bfloat16, enabled=on_device.type == "cuda")


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """The normaliser and the autocast context of one trained (or training) network."""

    normalize: Callable[[torch.Tensor], torch.Tensor]
    autocast: torch.autocast

    @classmethod
    def build(
        cls, statistics: dict[str, list[float]], on_device: torch.device, image_size: int = 0
    ) -> "Preprocess":
        return cls(make_normalizer(statistics, on_device, image_size), make_autocast(on_device))
