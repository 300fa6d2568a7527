"""Building blocks shared by the model families."""

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

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


STEP_COUNTER = "num_batches_tracked"


def drop_step_counters(model: nn.Module) -> None:
    """BatchNorm counts its training steps in a buffer that only momentum=None (a cumulative
    average) reads, and counting is a kernel launch per layer per step: 20 of a ResNet-18
    step's 191 on a GPU. Every BatchNorm with a momentum loses its counter; a state dict saved
    with counters (before this) still loads, the counters dropped as it is read."""
    for module in model.modules():
        if isinstance(module, _BatchNorm) and module.momentum is not None:
            module.register_buffer(STEP_COUNTER, None)
            module.register_load_state_dict_pre_hook(_drop_saved_step_counter)


def _drop_saved_step_counter(module, state_dict, prefix, *_) -> None:
    state_dict.pop(prefix + STEP_COUNTER, None)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
