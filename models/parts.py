"""The parts of a network that training treats apart: its stem (the first layer with weights)
and its head (the classifier that gives the logits: every model here ends in a linear layer,
which tests/test_models.py checks for each registered one). Fine-tuning replaces the head;
freezing and per-part learning rates select parameters by part."""

from torch import nn


def head(model: nn.Module) -> tuple[str, nn.Linear]:
    """(qualified name, module) of the classifier: the last nn.Linear in module order."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear classifier")
    return linears[-1]


def stem(model: nn.Module) -> tuple[str, nn.Module]:
    """(qualified name, module) of the first module that holds parameters of its own."""
    for name, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            return name, module
    raise ValueError(f"{type(model).__name__} has no parameters")


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the classifier for a freshly initialised one with num_classes outputs (fine-tuning
    on other classes), on the old one's device; returns the new one."""
    name, old = head(model)
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attribute, new)
    return new
