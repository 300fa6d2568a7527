"""Reports 001 and 003's "Backbone" net: N stacked backbones, each K parallel conv blocks whose
outputs are summed with weights computed from the backbone's input, then batch norm."""

import torch
from torch import nn

from models.layers import make_activation
from models.registry import register_model
from registry import PositiveInt, Rate, UsageError

# Report 003's MLP head: three hidden layers of 256, 128 and 64 units.
MLP_HEAD = (256, 128, 64)
HEADS = ("linear", "mlp")


def conv_layer(
    in_channels: int, out_channels: int, kernel_size: int, activation: str, pool: bool,
    dropout: float,
) -> nn.Sequential:  # fmt: skip
    """conv-BN-act-max-pool-dropout, report 001's ConvLayer."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        make_activation(activation),
        nn.MaxPool2d(2) if pool else nn.Identity(),
        nn.Dropout(dropout),
    )


class Backbone(nn.Module):
    """O = BN(sum_k a_k Conv_k(X)), a = sigmoid(Linear(SpatialAveragePool(X)))."""

    def __init__(self, branches: list[nn.Module], in_channels: int, out_channels: int):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, len(branches)),
            nn.Sigmoid(),
        )  # fmt: skip
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.gate(x)
        outputs = torch.stack([branch(x) for branch in self.branches], 1)
        return self.norm((weights[:, :, None, None, None] * outputs).sum(1))


@register_model("backbone")
def backbone(
    num_classes: int,
    image_shape: tuple[int, int, int],
    blocks: PositiveInt = 2,
    parallel: PositiveInt = 3,
    convs: PositiveInt = 2,
    width: PositiveInt = 128,
    max_channels: PositiveInt = 1024,
    kernel_size: PositiveInt = 3,
    activation: str = "relu",
    dropout: Rate = 0.2,
    head: str = "linear",
    kernel_sizes: list[PositiveInt] | None = None,
) -> nn.Module:
    """`blocks` (N) backbones of `parallel` (K) branches of `convs` (M) conv layers. Channels
    start at `width` and double with every conv layer down the net, up to `max_channels`
    (report 001: [[128, 256], [512, 1024]]; report 003: [64], [128], [256], [512]); each
    layer max-pools while the map is larger than 1 pixel. Head: global average pool, then a
    linear layer or report 003's 3-hidden-layer MLP. `kernel_sizes` gives each conv layer down
    the net its own kernel (blocks x convs of them), else all take `kernel_size`; an even
    kernel (report 001's 91.38% run used 2) grows the map by a pixel, which pooling halves."""
    if head not in HEADS:
        raise UsageError(f"backbone head must be one of {HEADS}, not '{head}'")
    kernels = list(kernel_sizes or [kernel_size] * (blocks * convs))
    if len(kernels) != blocks * convs:
        raise UsageError(
            f"backbone kernel_sizes needs one kernel per conv layer ({blocks * convs})"
        )
    channels, size = image_shape[0], min(image_shape[1:])
    stages: list[nn.Module] = []
    layer_index = 0
    for _ in range(blocks):
        in_channels, branch_layers = channels, [[] for _ in range(parallel)]
        for _ in range(convs):
            out_channels = min(width * 2**layer_index, max_channels)
            pool = size >= 2
            kernel = kernels[layer_index]
            for layers in branch_layers:
                layers.append(conv_layer(channels, out_channels, kernel, activation, pool, dropout))
            size += 2 * (kernel // 2) - kernel + 1  # what the padded conv leaves
            channels, size, layer_index = out_channels, size // 2 if pool else size, layer_index + 1
        stages.append(Backbone([nn.Sequential(*b) for b in branch_layers], in_channels, channels))
    classifier: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    widths = (channels, *MLP_HEAD) if head == "mlp" else (channels,)
    for inputs, outputs in zip(widths, widths[1:], strict=False):
        classifier += [nn.Linear(inputs, outputs), make_activation(activation)]
    classifier.append(nn.Linear(widths[-1], num_classes))
    return nn.Sequential(*stages, *classifier)
