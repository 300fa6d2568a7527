"""Weight initialisation schemes by name, as TrialConfig's `init` names them."""

from collections.abc import Callable

from torch import nn

from registry import Registry

INITIALIZERS: Registry = Registry("init", supplied=("model",))
WeightInit = Callable[[nn.Parameter], object]


def _apply(model: nn.Module, conv_init: WeightInit, linear_init: WeightInit) -> None:
    """Re-initialise the trainable weights of every conv and linear layer, zero their biases;
    frozen weights (a whitening stem fitted to data) keep theirs."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear) and module.weight.requires_grad:
            (conv_init if isinstance(module, nn.Conv2d) else linear_init)(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


@INITIALIZERS.register("default")
def default(model: nn.Module) -> None:
    """PyTorch's own: Kaiming-uniform with a=sqrt(5), which is LeCun-like in effect."""


@INITIALIZERS.register("xavier")
def xavier(model: nn.Module) -> None:
    """Glorot & Bengio's uniform init (reports 001 and 003)."""
    _apply(model, nn.init.xavier_uniform_, nn.init.xavier_uniform_)


@INITIALIZERS.register("kaiming")
def kaiming(model: nn.Module) -> None:
    """He et al.'s normal init for ReLU nets: convs scaled by fan-out as torchvision's ResNets
    do; linear layers by fan-in, which keeps a wide classifier's first logits small."""
    _apply(
        model,
        lambda weight: nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu"),
        lambda weight: nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu"),
    )


@INITIALIZERS.register("dirac")
def dirac(model: nn.Module) -> None:
    """airbench94's: PyTorch's own init, then the first in_channels filters of every trainable
    conv set to the identity (a Dirac delta), so that each conv starts by passing its input
    through; every conv bias (a whitening stem's too) starts at zero."""
    for module in model.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        if module.weight.requires_grad:
            nn.init.dirac_(module.weight.data[: module.weight.shape[1]])
        if module.bias is not None:
            nn.init.zeros_(module.bias)
