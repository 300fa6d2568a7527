"""Report 000's residual conv encoders: "RN" (a 1x1 conv widens the image to C channels, N
residual blocks keep C, a conv encoder gives the logits) and "RR" (every block also sees the
original image, stacked as extra channels; the residual adds over the first C only)."""

import torch
from torch import nn

from models.convnet import conv_block
from models.layers import conv3x3, make_activation
from models.registry import register_model
from registry import NonNegativeInt, PositiveInt, Rate


class RNBlock(nn.Module):
    """x + BN(conv(act(BN(conv(x))))), widening to `expansion` x C inside; spatial dropout
    (whole channels) after the activation, as report 000 settled on."""

    def __init__(
        self, channels: int, extra_channels: int, expansion: int, activation: str,
        spatial_dropout: float,
    ):  # fmt: skip
        super().__init__()
        inner = channels * expansion
        self.body = nn.Sequential(
            conv3x3(channels + extra_channels, inner),
            nn.BatchNorm2d(inner),
            make_activation(activation),
            nn.Dropout2d(spatial_dropout),
            conv3x3(inner, channels),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, image: torch.Tensor | None = None) -> torch.Tensor:
        inputs = x if image is None else torch.cat([x, image], 1)
        return x + self.body(inputs)


class ResidualEncoder(nn.Module):
    def __init__(self, stem: nn.Module, blocks: nn.ModuleList, head: nn.Module, reinject: bool):
        super().__init__()
        self.stem, self.blocks, self.head, self.reinject = stem, blocks, head, reinject

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.stem(image)
        extra = image if self.reinject else None
        for block in self.blocks:
            x = block(x, extra)
        return self.head(x)


@register_model("rn")
def rn(
    num_classes: int,
    image_shape: tuple[int, int, int],
    width: PositiveInt = 16,
    blocks: PositiveInt = 4,
    expansion: PositiveInt = 2,
    activation: str = "leaky_relu",
    reinject: bool = False,
    spatial_dropout: Rate = 0.0,
    encoder_blocks: NonNegativeInt = 3,
) -> nn.Module:
    """RN<blocks> (or RR<blocks> with `reinject`) at C = `width` channels; the head is
    `encoder_blocks` conv blocks (conv-BN-act-max-pool, doubling the channels) and a linear
    layer on the flattened features."""
    in_channels, height, width_px = image_shape
    stem = nn.Conv2d(in_channels, width, 1)
    extra = in_channels if reinject else 0
    body = nn.ModuleList(
        RNBlock(width, extra, expansion, activation, spatial_dropout) for _ in range(blocks)
    )
    head: list[nn.Module] = []
    channels = width
    for _ in range(encoder_blocks):
        pool = min(height, width_px) >= 2
        head.append(conv_block(channels, 2 * channels, 3, 1, True, activation, pool))
        channels *= 2
        if pool:
            height, width_px = height // 2, width_px // 2
    head += [nn.Flatten(), nn.Linear(channels * height * width_px, num_classes)]
    return ResidualEncoder(stem, body, nn.Sequential(*head), reinject)
