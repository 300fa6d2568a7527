"""DenseNet for small images (Huang et al., 2017), report 002's light 0.6M-parameter net:
three dense blocks joined by compressing transitions."""

import torch
from torch import nn

from models.layers import make_activation
from models.registry import register_model
from registry import Fraction, PositiveInt, UsageError


class DenseLayer(nn.Module):
    """BN-act-[1x1 conv to 4k channels-BN-act]-3x3 conv to k channels, concatenated to x."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck: bool, activation: str):
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm2d(in_channels), make_activation(activation)]
        channels = in_channels
        if bottleneck:
            channels = 4 * growth_rate
            layers += [
                nn.Conv2d(in_channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                make_activation(activation),
            ]
        layers.append(nn.Conv2d(channels, growth_rate, 3, padding=1, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def transition(in_channels: int, out_channels: int, activation: str) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        make_activation(activation),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.AvgPool2d(2),
    )


@register_model("densenet")
def densenet(
    num_classes: int,
    image_shape: tuple[int, int, int],
    depth: PositiveInt = 58,
    growth_rate: PositiveInt = 12,
    compression: Fraction = 0.5,
    bottleneck: bool = True,
    activation: str = "relu",
) -> nn.Module:
    """`depth` counts the convs and the classifier: (depth - 4) / 3 per dense block, two per
    layer with the bottleneck (DenseNet-BC). Transitions keep `compression` of the channels."""
    per_layer = 2 if bottleneck else 1
    layers_per_block, remainder = divmod(depth - 4, 3 * per_layer)
    if remainder or layers_per_block < 1:
        raise UsageError(
            f"densenet depth must be 4 + a positive multiple of {3 * per_layer} "
            f"{'with' if bottleneck else 'without'} the bottleneck, not {depth}"
        )
    if not 0 < compression <= 1:
        raise UsageError(f"densenet compression must be in (0, 1], not {compression}")
    channels = 2 * growth_rate if bottleneck else 16
    features: list[nn.Module] = [nn.Conv2d(image_shape[0], channels, 3, padding=1, bias=False)]
    for block in range(3):
        for _ in range(layers_per_block):
            features.append(DenseLayer(channels, growth_rate, bottleneck, activation))
            channels += growth_rate
        if block < 2:
            compressed = max(1, int(channels * compression))
            features.append(transition(channels, compressed, activation))
            channels = compressed
    features += [
        nn.BatchNorm2d(channels),
        make_activation(activation),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, num_classes),
    ]
    return nn.Sequential(*features)
