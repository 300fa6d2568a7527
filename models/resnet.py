"""ResNets for small images: ResNet-10/18/34 with any of report 002's five residual block
orderings, and the DAWNBench ResNet-9."""

import torch
from torch import nn

from models.layers import check_downsample, conv3x3, conv_bn_act, make_activation
from models.registry import register_model
from registry import PositiveInt, UsageError

# Basic blocks per stage for each depth, as in He et al. (2016).
STAGES = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

# Report 002 (after He et al., "Identity mappings", 2016): where BN and the activation sit
# around the addition. name -> (residual branch, layers after the addition, pre-activation?).
# A pre-activation net leaves the sum un-normalised, so its stem is a bare conv and BN-act
# come once more before the head.
BLOCK_ORDERS = {
    "original": (("conv", "bn", "act", "conv", "bn"), ("act",), False),
    "bn_after_add": (("conv", "bn", "act", "conv"), ("bn", "act"), False),
    "act_before_add": (("conv", "bn", "act", "conv", "bn", "act"), (), False),
    "act_preact": (("act", "conv", "bn", "act", "conv", "bn"), (), True),
    "full_preact": (("bn", "act", "conv", "bn", "act", "conv"), (), True),
}


def check_block_order(block: str) -> None:
    if block not in BLOCK_ORDERS:
        raise UsageError(f"unknown block '{block}'; choose one of: {', '.join(BLOCK_ORDERS)}")


class ResidualBlock(nn.Module):
    """Two 3x3 convs plus a shortcut, with BN and the activation placed as `block` says.
    Max-pool downsampling shrinks the input of both paths; stride does it in the first conv
    (and in the 1x1 projection that the shortcut then needs)."""

    def __init__(
        self, in_channels: int, out_channels: int, activation: str, downsample: str | None,
        block: str,
    ):  # fmt: skip
        super().__init__()
        branch_order, after_order, _ = BLOCK_ORDERS[block]
        self.pool = nn.MaxPool2d(2) if downsample == "maxpool" else nn.Identity()
        stride = 2 if downsample == "stride" else 1
        branch: list[nn.Module] = []
        channels, conv_stride = in_channels, stride  # only the first conv strides
        for layer in branch_order:
            if layer == "conv":
                branch.append(conv3x3(channels, out_channels, conv_stride))
                channels, conv_stride = out_channels, 1
            elif layer == "bn":
                branch.append(nn.BatchNorm2d(channels))
            else:
                branch.append(make_activation(activation))
        self.branch = nn.Sequential(*branch)
        self.after = nn.Sequential(
            *(nn.BatchNorm2d(out_channels) if layer == "bn" else make_activation(activation)
              for layer in after_order)
        )  # fmt: skip
        needs_projection = in_channels != out_channels or stride != 1
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if needs_projection
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return self.after(self.branch(x) + self.shortcut(x))


@register_model("resnet")
def resnet(
    num_classes: int,
    image_shape: tuple[int, int, int],
    depth: PositiveInt = 18,
    width: PositiveInt = 64,
    activation: str = "relu",
    downsample: str = "stride",
    block: str = "full_preact",
) -> nn.Module:
    """ResNet-10/18/34 with a CIFAR stem (one 3x3 conv, no early pooling). `width` is the
    first stage's channel count; each later stage doubles it. `block` is one of report 002's
    five orderings of conv, BN, activation and addition."""
    if depth not in STAGES:
        raise UsageError(f"resnet depth must be one of {sorted(STAGES)}, not {depth}")
    check_downsample(downsample)
    check_block_order(block)
    preactivation = BLOCK_ORDERS[block][2]
    stem = conv3x3(image_shape[0], width)
    layers: list[nn.Module] = [
        stem if preactivation else nn.Sequential(stem, nn.BatchNorm2d(width),
                                                 make_activation(activation))
    ]  # fmt: skip
    channels = width
    for stage, blocks in enumerate(STAGES[depth]):
        out_channels = width * 2**stage
        for index in range(blocks):
            block_downsample = downsample if stage > 0 and index == 0 else None
            layers.append(
                ResidualBlock(channels, out_channels, activation, block_downsample, block)
            )
            channels = out_channels
    if preactivation:
        layers += [nn.BatchNorm2d(channels), make_activation(activation)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


@register_model("resnet9")
def resnet9(
    num_classes: int,
    image_shape: tuple[int, int, int],
    width: PositiveInt = 64,
    activation: str = "relu",
    downsample: str = "maxpool",
) -> nn.Module:
    """The DAWNBench ResNet-9 (Page, 2018): prep, three conv groups with residuals after the
    first and last, max-pooled head and logits scaled by 1/8, which keeps the initial softmax
    soft enough for the high one-cycle learning rates this net is trained with."""
    check_downsample(downsample)

    def residual(channels: int) -> Residual:
        return Residual(
            nn.Sequential(
                conv_bn_act(channels, channels, activation),
                conv_bn_act(channels, channels, activation),
            )
        )

    return nn.Sequential(
        conv_bn_act(image_shape[0], width, activation),
        conv_bn_act(width, 2 * width, activation, downsample),
        residual(2 * width),
        conv_bn_act(2 * width, 4 * width, activation, downsample),
        conv_bn_act(4 * width, 8 * width, activation, downsample),
        residual(8 * width),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * width, num_classes, bias=False),
        Scale(0.125),
    )
