"""Network definitions, built by name: `models.build("resnet9", num_classes=10, ...)`."""

from torch import nn

from models import (  # noqa: F401  (importing registers the models)
    backbone,
    convnet,
    densenet,
    fastnet,
    mlp,
    resnet,
    rn,
)
from models.fastnet import fit_to_data
from models.init import INITIALIZERS
from models.layers import drop_step_counters
from models.registry import MODELS, register_model

__all__ = ["INITIALIZERS", "MODELS", "build", "fit_to_data", "list_models", "register_model"]


def build(
    name: str, *, num_classes: int, image_shape: tuple[int, int, int], init: str = "default",
    **kwargs,
) -> nn.Module:  # fmt: skip
    """The named network with the `init` scheme applied to its conv and linear weights, its
    BatchNorms without step counters (layers.drop_step_counters)."""
    kwargs = MODELS.check_arguments(name, kwargs, "model_args")
    model = MODELS[name](num_classes=num_classes, image_shape=image_shape, **kwargs)
    INITIALIZERS[init](model)
    drop_step_counters(model)
    return model


def list_models() -> list[str]:
    return MODELS.names()
