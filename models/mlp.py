"""Fully connected baselines on flattened images (report 000's "Naive" net, report 004's MLPs)."""

import math

from torch import nn

from models.layers import make_activation
from models.registry import register_model
from registry import PositiveInt, Rate


@register_model("mlp")
def mlp(
    num_classes: int,
    image_shape: tuple[int, int, int],
    width: PositiveInt = 512,
    depth: PositiveInt = 2,
    dropout: Rate = 0.0,
    activation: str = "relu",
    taper: bool = False,
) -> nn.Module:
    """`depth` hidden layers of `width` units (halving layer by layer with `taper`, as report
    004's 1024-512-256 net), each followed by the activation and dropout."""
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(image_shape)
    for index in range(depth):
        units = max(1, width >> index) if taper else width
        layers += [nn.Linear(features, units), make_activation(activation), nn.Dropout(dropout)]
        features = units
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
