"""Parameters chosen by rule, for what a TrialConfig does to some parameters and not others:
`param_groups` (their own learning-rate and weight-decay multipliers: airbench's 64x rate for
BatchNorm biases, a smaller rate for the pretrained body when fine-tuning) and `freeze` (train a
part for N epochs, then freeze it: airbench's whitening bias after 3, a pretrained body from the
start)."""

import dataclasses
from collections.abc import Mapping

from torch import nn

from models import parts
from registry import Registry, UsageError

PARAMETER_RULES: Registry = Registry("parameter rule", supplied=("model",))
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
GROUP_KEYS = {"lr_scale", "weight_decay_scale"}


def _of(modules) -> list[nn.Parameter]:
    return [p for module in modules for p in module.parameters(recurse=False)]


@PARAMETER_RULES.register("norm_biases")
def norm_biases(model: nn.Module) -> list[nn.Parameter]:
    """The shifts of the normalisation layers."""
    return [m.bias for m in model.modules() if isinstance(m, NORMS) and m.bias is not None]


@PARAMETER_RULES.register("norm")
def norm(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter of the normalisation layers (scales and shifts)."""
    return _of(m for m in model.modules() if isinstance(m, NORMS))


@PARAMETER_RULES.register("biases")
def biases(model: nn.Module) -> list[nn.Parameter]:
    return [p for name, p in model.named_parameters() if name.rpartition(".")[2] == "bias"]


@PARAMETER_RULES.register("stem")
def stem(model: nn.Module) -> list[nn.Parameter]:
    """The first layer's parameters (a whitening stem: its bias; its filters are fixed)."""
    return _of([parts.stem(model)[1]])


@PARAMETER_RULES.register("head")
def head(model: nn.Module) -> list[nn.Parameter]:
    """The classifier's parameters."""
    return _of([parts.head(model)[1]])


@PARAMETER_RULES.register("body")
def body(model: nn.Module) -> list[nn.Parameter]:
    """Everything but the classifier: the pretrained part when fine-tuning."""
    in_head = {id(p) for p in head(model)}
    return [p for p in model.parameters() if id(p) not in in_head]


def check(param_groups: Mapping, freeze: Mapping) -> None:
    """Names must be rules; group settings lr_scale / weight_decay_scale >= 0; epochs >= 0."""
    for rule, settings in param_groups.items():
        PARAMETER_RULES[rule]
        if not isinstance(settings, Mapping) or set(settings) - GROUP_KEYS:
            raise UsageError(
                f"param_groups.{rule} takes {' and '.join(sorted(GROUP_KEYS))}, not {settings!r}"
            )
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise UsageError(f"param_groups.{rule}.{key} must be a number >= 0")
    for rule, epochs in freeze.items():
        PARAMETER_RULES[rule]
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise UsageError(f"freeze.{rule} must be a whole number of epochs >= 0")


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, scales: Mapping[str, Mapping[str, float]]
) -> list[dict]:
    """torch optimizer parameter groups: one per rule in `scales` (in order; a parameter goes
    to the first rule that matches it), with lr and weight_decay multiplied by its
    lr_scale and weight_decay_scale, then one group of the rest at lr and weight_decay."""
    taken: set[int] = set()
    groups = []
    for rule, settings in scales.items():
        chosen = [p for p in PARAMETER_RULES[rule](model) if id(p) not in taken]
        taken |= {id(p) for p in chosen}
        groups.append(
            {
                "params": chosen,
                "lr": lr * settings.get("lr_scale", 1.0),
                "weight_decay": weight_decay * settings.get("weight_decay_scale", 1.0),
            }
        )
    groups.append({"params": [p for p in model.parameters() if id(p) not in taken]})
    return [group for group in groups if group["params"]]


@dataclasses.dataclass
class Freezer:
    """Turns parts of a model off after their epochs: `freeze` maps rule -> the epochs they
    train (0: frozen throughout). Only parameters that were trainable to begin with are
    touched (a whitening stem's filters stay fixed). A normalisation layer frozen throughout
    also keeps its running statistics (it runs in eval mode), as timm's frozen BatchNorm does."""

    model: nn.Module
    freeze: Mapping[str, int]

    def __post_init__(self):
        self.parts = [
            (epochs, [p for p in PARAMETER_RULES[rule](self.model) if p.requires_grad])
            for rule, epochs in self.freeze.items()
        ]
        fixed = {id(p) for epochs, chosen in self.parts if epochs == 0 for p in chosen}
        self.fixed_norms = []
        for module in self.model.modules():
            trainable = [id(p) for p in module.parameters(recurse=False) if p.requires_grad]
            if isinstance(module, NORMS) and trainable and set(trainable) <= fixed:
                self.fixed_norms.append(module)

    def start_epoch(self, epoch: int) -> None:
        """Set which parameters train in `epoch` (1-based); call after model.train()."""
        for epochs, chosen in self.parts:
            for parameter in chosen:
                parameter.requires_grad_(epoch <= epochs)
        for module in self.fixed_norms:
            module.eval()
