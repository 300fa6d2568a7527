"""An airbench-class network (after Keller Jordan's airbench94, written anew): a frozen
patch-whitening stem fitted to the training images, three conv groups of conv-pool-BN-GELU,
conv-BN-GELU, max-pooled features and scaled logits. Small and wide: made to reach ~94% on
CIFAR-10 in about ten epochs."""

from collections.abc import Callable

import torch
from torch import nn

from models.layers import make_activation
from models.registry import register_model
from models.resnet import Scale
from registry import PositiveFloat, PositiveInt


class PatchWhitening(nn.Conv2d):
    """A k x k conv whose filters are the eigenvectors of the training images' k x k patch
    second moments, scaled to unit variance, in +/- pairs so that a following GELU sees both
    signs. `fit` sets them from data (the trainer calls it once); they are then frozen, only the
    bias learns. Whitened inputs let the first trainable layers learn much faster. As airbench94
    computes it: the moments of the normalised patches, uncentred (their mean is near 0 after
    normalising), filters in order of falling eigenvalue."""

    def __init__(self, in_channels: int, kernel_size: int, eps: float = 5e-4):
        patch = in_channels * kernel_size**2
        super().__init__(in_channels, 2 * patch, kernel_size, padding=0, bias=True)
        self.eps = eps
        self.weight.requires_grad_(False)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """images: normalised float [N, C, H, W], a few thousand are plenty."""
        kernel = self.kernel_size[0]
        patches = images.unfold(2, kernel, 1).unfold(3, kernel, 1)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, self.weight[0].numel()).float()
        moments = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(moments)  # ascending
        filters = (eigenvectors / (eigenvalues + self.eps).sqrt()).T.flip(0)
        filters = filters.reshape(-1, *self.weight.shape[1:])
        self.weight.copy_(torch.cat([filters, -filters]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # In fp32 under autocast too: the filters, scaled by up to 1/sqrt(eigenvalue), make
        # large sums that cancel, and bf16 operands moved the output by 3.7% of its magnitude
        # (BENCHMARKS.md: The whitening stem in bf16). A 2x2 conv of a few channels: fp32
        # costs next to nothing; the output is rounded as any layer's is, at the next one.
        with torch.autocast(images.device.type, enabled=False):
            return super().forward(images.to(self.weight.dtype))  # its own: fp32, or fp64


def conv_group(in_channels: int, out_channels: int, activation: str) -> nn.Sequential:
    def batch_norm(channels: int) -> nn.BatchNorm2d:
        # airbench's BN: a fast-moving average (momentum 0.4 in torch's sense) and no scale,
        # since a scale before GELU-conv-BN is redundant and slows training down.
        norm = nn.BatchNorm2d(channels, momentum=0.4, eps=1e-12)
        norm.weight.requires_grad_(False)
        return norm

    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        batch_norm(out_channels),
        make_activation(activation),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        batch_norm(out_channels),
        make_activation(activation),
    )


@register_model("fastnet")
def fastnet(
    num_classes: int,
    image_shape: tuple[int, int, int],
    width: PositiveInt = 64,
    widen: PositiveInt = 4,
    whiten_kernel: PositiveInt = 2,
    activation: str = "gelu",
    logit_scale: PositiveFloat = 1 / 9,
) -> nn.Module:
    """Groups of `width`, `widen` x `width` and `widen` x `width` channels (airbench94: 64,
    256, 256); logits multiplied by `logit_scale`, which keeps the early softmax soft."""
    stem = PatchWhitening(image_shape[0], whiten_kernel)
    widths = (width, widen * width, widen * width)
    return nn.Sequential(
        stem,
        make_activation(activation),
        conv_group(stem.out_channels, widths[0], activation),
        conv_group(widths[0], widths[1], activation),
        conv_group(widths[1], widths[2], activation),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(widths[2], num_classes, bias=False),
        Scale(logit_scale),
    )


def fit_to_data(model: nn.Module, images: Callable[[], torch.Tensor]) -> None:
    """Let every layer that initialises from the training data (PatchWhitening) do so.
    `images` makes the normalised images when first needed: most models have no such layer,
    and they need not pay for normalising (perhaps upsizing) thousands of images."""
    fitted = [module for module in model.modules() if isinstance(module, PatchWhitening)]
    if fitted:
        batch = images()
        for module in fitted:
            module.fit(batch)
