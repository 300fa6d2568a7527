"""Network definitions, built by name: `models.build("resnet9", num_classes=10, ...)`."""

from torch import nn

from models import convnet, mlp, resnet  # noqa: F401  (importing registers the models)
from models.registry import MODELS, register_model

__all__ = ["MODELS", "build", "list_models", "register_model"]


def build(name: str, *, num_classes: int, image_shape: tuple[int, int, int], **kwargs) -> nn.Module:
    MODELS.check_arguments(name, kwargs)
    return MODELS[name](num_classes=num_classes, image_shape=image_shape, **kwargs)


def list_models() -> list[str]:
    return MODELS.names()
