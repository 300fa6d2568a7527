"""Plain conv stacks (report 000's ConvEncoder; report 004's LeNet-5 and its 5-block net with a
strided stem): blocks of conv [+ BN] + activation + max-pool, then 1-3 linear layers."""

from torch import nn

from models.layers import make_activation
from models.registry import register_model
from registry import UsageError

HEADS = ("gap", "flatten")
GROWTH = ("double", "fixed")


def conv_block(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, batch_norm: bool,
    activation: str, pool: bool, spatial_dropout: float = 0.0,
) -> nn.Sequential:  # fmt: skip
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=not batch_norm,
        ),  # fmt: skip
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(make_activation(activation))
    if pool:
        layers.append(nn.MaxPool2d(2))
    if spatial_dropout:
        layers.append(nn.Dropout2d(spatial_dropout))  # drops whole channels (report 000)
    return nn.Sequential(*layers)


@register_model("convnet")
def convnet(
    num_classes: int,
    image_shape: tuple[int, int, int],
    blocks: int = 3,
    width: int = 32,
    kernel_size: int = 3,
    growth: str = "double",
    batch_norm: bool = True,
    activation: str = "relu",
    stem_stride: int = 1,
    head: str = "gap",
    linear_layers: int = 1,
    hidden_width: int = 256,
    dropout: float = 0.0,
    spatial_dropout: float = 0.0,
) -> nn.Module:
    """`blocks` conv blocks starting at `width` channels (doubling each block, or fixed), each
    max-pooled while the feature map is larger than 1 pixel, and followed by spatial dropout.
    The first conv strides by `stem_stride` and, if it strides, is not pooled (report 004's
    stride-3 stem brings 96x96 inputs back to 32x32). Head: global average pooling or flatten,
    then `linear_layers` linear layers (the last gives the logits) with dropout before each."""
    if head not in HEADS or growth not in GROWTH:
        raise UsageError(f"convnet head must be one of {HEADS} and growth one of {GROWTH}")
    if not 1 <= linear_layers <= 3:
        raise UsageError("convnet linear_layers must be 1, 2 or 3")
    channels, (height, width_px) = image_shape[0], image_shape[1:]
    features: list[nn.Module] = []
    for index in range(blocks):
        out_channels = width * 2**index if growth == "double" else width
        stride = stem_stride if index == 0 else 1
        # An odd kernel padded by kernel_size // 2 keeps the size, less the stride.
        height, width_px = (height - 1) // stride + 1, (width_px - 1) // stride + 1
        pool = min(height, width_px) >= 2 and stride == 1
        features.append(
            conv_block(channels, out_channels, kernel_size, stride, batch_norm, activation, pool,
                       spatial_dropout)
        )  # fmt: skip
        channels = out_channels
        if pool:
            height, width_px = height // 2, width_px // 2
    features.append(nn.AdaptiveAvgPool2d(1) if head == "gap" else nn.Identity())
    features.append(nn.Flatten())
    body = nn.Sequential(*features)
    flat = channels if head == "gap" else channels * height * width_px
    widths = [flat] + [hidden_width] * (linear_layers - 1) + [num_classes]
    classifier: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(zip(widths, widths[1:], strict=False)):
        classifier += [nn.Dropout(dropout), nn.Linear(inputs, outputs)]
        if index < linear_layers - 1:
            classifier.append(make_activation(activation))
    return nn.Sequential(body, *classifier)
