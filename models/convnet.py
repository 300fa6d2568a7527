"""Plain conv stacks (report 000's ConvEncoder; report 004's LeNet-5 and its 5-block net with a
strided stem): blocks of conv [+ BN] + activation + max-pool, then 1-3 linear layers."""

from torch import nn

from models.layers import make_activation
from models.registry import register_model
from registry import NonNegativeInt, PositiveInt, Rate, UsageError

HEADS = ("gap", "flatten")
GROWTH = ("double", "fixed")
DROPOUT_POSITIONS = ("every", "last")  # before every linear layer, or the last one only


def conv_block(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, batch_norm: bool,
    activation: str, pool: bool, spatial_dropout: float = 0.0, padding: int | None = None,
) -> nn.Sequential:  # fmt: skip
    """conv [+ BN] + activation [+ max-pool] [+ spatial dropout]; padding kernel_size // 2
    unless given."""
    padding = kernel_size // 2 if padding is None else padding
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
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
    blocks: PositiveInt = 3,
    width: PositiveInt = 32,
    kernel_size: PositiveInt = 3,
    growth: str = "double",
    batch_norm: bool = True,
    activation: str = "relu",
    stem_stride: PositiveInt = 1,
    head: str = "gap",
    linear_layers: PositiveInt = 1,
    hidden_width: PositiveInt = 256,
    dropout: Rate = 0.0,
    spatial_dropout: Rate = 0.0,
    kernel_sizes: list[PositiveInt] | None = None,
    stem_padding: NonNegativeInt | None = None,
    pool_last: bool = True,
    dropout_position: str = "every",
) -> nn.Module:
    """`blocks` conv blocks starting at `width` channels (doubling each block, or fixed), each
    max-pooled while the feature map is larger than 1 pixel (the last one only if
    `pool_last`), and followed by spatial dropout. `kernel_sizes` gives each block its own
    kernel (report 004: 3, 5, 3, 3, 3), else all take `kernel_size`. The first conv strides by
    `stem_stride`, padded by `stem_padding` (default kernel_size // 2), and if it strides it is
    not pooled (report 004's unpadded stride-3 stem brings 96x96 inputs back to 32x32). Head:
    global average pooling or flatten, then `linear_layers` linear layers (the last gives the
    logits) with dropout before every one, or before the last only (report 004)."""
    if head not in HEADS or growth not in GROWTH or dropout_position not in DROPOUT_POSITIONS:
        raise UsageError(
            f"convnet head must be one of {HEADS}, growth one of {GROWTH} and "
            f"dropout_position one of {DROPOUT_POSITIONS}"
        )
    if not 1 <= linear_layers <= 3:
        raise UsageError("convnet linear_layers must be 1, 2 or 3")
    kernels = list(kernel_sizes or [kernel_size] * blocks)
    if len(kernels) != blocks:
        raise UsageError(f"convnet kernel_sizes needs one kernel per block ({blocks})")
    channels, (height, width_px) = image_shape[0], image_shape[1:]
    features: list[nn.Module] = []
    for index, kernel in enumerate(kernels):
        out_channels = width * 2**index if growth == "double" else width
        stride = stem_stride if index == 0 else 1
        padding = kernel // 2 if index or stem_padding is None else stem_padding
        height = (height + 2 * padding - kernel) // stride + 1
        width_px = (width_px + 2 * padding - kernel) // stride + 1
        pool = min(height, width_px) >= 2 and stride == 1 and (pool_last or index < blocks - 1)
        features.append(
            conv_block(channels, out_channels, kernel, stride, batch_norm, activation, pool,
                       spatial_dropout, padding)
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
        if dropout_position == "every" or index == linear_layers - 1:
            classifier.append(nn.Dropout(dropout))
        classifier.append(nn.Linear(inputs, outputs))
        if index < linear_layers - 1:
            classifier.append(make_activation(activation))
    return nn.Sequential(body, *classifier)


@register_model("lenet5")
def lenet5(
    num_classes: int, image_shape: tuple[int, int, int], activation: str = "relu",
    pool: str = "max",
) -> nn.Module:  # fmt: skip
    """LeCun et al.'s LeNet-5 as report 004 trained it: unpadded 5x5 convolutions to 6 and 16
    channels, each followed by the activation and 2x2 pooling (max or average), then linear
    layers of 120 and 84 units. At 32x32 the flattened features are 16x5x5, at 96x96 16x21x21."""
    pools = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
    if pool not in pools:
        raise UsageError(f"lenet5 pool must be one of {sorted(pools)}, not '{pool}'")
    channels, height, width = image_shape
    for _ in range(2):
        height, width = (height - 4) // 2, (width - 4) // 2
    return nn.Sequential(
        nn.Conv2d(channels, 6, 5), make_activation(activation), pools[pool](2),
        nn.Conv2d(6, 16, 5), make_activation(activation), pools[pool](2),
        nn.Flatten(),
        nn.Linear(16 * height * width, 120), make_activation(activation),
        nn.Linear(120, 84), make_activation(activation),
        nn.Linear(84, num_classes),
    )  # fmt: skip
