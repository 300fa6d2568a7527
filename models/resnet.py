"""ResNets for small images: a pre-activation ResNet (10/18/34) and the DAWNBench ResNet-9."""

import torch
from torch import nn

from models.layers import check_downsample, conv3x3, conv_bn_act, make_activation
from models.registry import register_model
from search.errors import UsageError

# Basic blocks per stage for each depth, as in He et al. (2016).
PREACT_STAGES = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class PreActBlock(nn.Module):
    """Full pre-activation basic block: BN-act-conv-BN-act-conv + shortcut (report 002's best)."""

    def __init__(
        self, in_channels: int, out_channels: int, activation: str, downsample: str | None
    ):
        super().__init__()
        # Max-pool downsampling shrinks the input of both paths; stride does it inside the convs.
        self.pool = nn.MaxPool2d(2) if downsample == "maxpool" else nn.Identity()
        stride = 2 if downsample == "stride" else 1
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = make_activation(activation)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = make_activation(activation)
        self.conv2 = conv3x3(out_channels, out_channels)
        needs_projection = in_channels != out_channels or stride != 1
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            if needs_projection
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        out = self.act1(self.bn1(x))
        # The projection reads the pre-activated input so that BN also normalises the shortcut.
        shortcut = self.shortcut(out) if not isinstance(self.shortcut, nn.Identity) else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + shortcut


@register_model("preact_resnet")
def preact_resnet(
    num_classes: int,
    image_shape: tuple[int, int, int],
    depth: int = 18,
    width: int = 64,
    activation: str = "relu",
    downsample: str = "stride",
) -> nn.Module:
    """Pre-activation ResNet with a CIFAR stem (one 3x3 conv, no early pooling).
    `width` is the first stage's channel count; each later stage doubles it."""
    if depth not in PREACT_STAGES:
        raise UsageError(f"preact_resnet depth must be one of {sorted(PREACT_STAGES)}, not {depth}")
    check_downsample(downsample)
    layers: list[nn.Module] = [conv3x3(image_shape[0], width)]
    channels = width
    for stage, blocks in enumerate(PREACT_STAGES[depth]):
        out_channels = width * 2**stage
        for block in range(blocks):
            block_downsample = downsample if stage > 0 and block == 0 else None
            layers.append(PreActBlock(channels, out_channels, activation, block_downsample))
            channels = out_channels
    layers += [
        nn.BatchNorm2d(channels),
        make_activation(activation),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    ]
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
    width: int = 64,
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
