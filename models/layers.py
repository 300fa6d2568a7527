"""Building blocks shared by the model families."""

from torch import nn

from registry import UsageError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "elu": nn.ELU,
    "celu": nn.CELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise UsageError(
            f"unknown activation '{name}'; choose one of: {', '.join(ACTIVATIONS)}"
        ) from None


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: every conv here is followed by batch norm, which has its own shift.
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv_bn_act(
    in_channels: int, out_channels: int, activation: str, downsample: str | None = None
) -> nn.Sequential:
    """conv -> [max-pool] -> BN -> activation; pooling before BN is cheaper and equivalent
    (BN and monotone activations commute with max), as report 002 measured."""
    stride = 2 if downsample == "stride" else 1
    layers = [conv3x3(in_channels, out_channels, stride)]
    if downsample == "maxpool":
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(out_channels), make_activation(activation)]
    return nn.Sequential(*layers)


DOWNSAMPLING = ("stride", "maxpool")


def check_downsample(downsample: str) -> None:
    if downsample not in DOWNSAMPLING:
        raise UsageError(
            f"unknown downsample '{downsample}'; choose one of: {', '.join(DOWNSAMPLING)}"
        )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
