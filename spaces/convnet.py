"""Plain conv stacks: depth, width, kernel, channel growth, batch norm, head and dropout."""

import optuna

from search.config import TrialConfig
from spaces.common import suggest_augment, suggest_epochs, suggest_optimizer, suggest_schedule
from spaces.registry import SpaceContext, register_space


@register_space("convnet")
def convnet(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """Conv stacks (LeNet-5 to report 004's 5-block net): blocks, width, kernel 3/5/7,
    channel growth, batch norm, strided stem, pooled or flattened head, 1-3 linear layers."""
    linear_layers = trial.suggest_int("linear_layers", 1, 3)
    model_args = {
        "blocks": trial.suggest_int("blocks", 2, 5),
        "width": trial.suggest_categorical("width", [16, 32, 64]),  # channels of the first block
        "kernel_size": trial.suggest_categorical("kernel_size", [3, 5, 7]),
        "growth": trial.suggest_categorical("growth", ["double", "fixed"]),
        "batch_norm": trial.suggest_categorical("batch_norm", [True, False]),
        "activation": trial.suggest_categorical(
            "activation", ["relu", "leaky_relu", "elu", "celu", "gelu", "silu", "mish"]
        ),
        "stem_stride": trial.suggest_categorical("stem_stride", [1, 2]),
        "head": trial.suggest_categorical("head", ["gap", "flatten"]),
        "linear_layers": linear_layers,
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    }
    if linear_layers > 1:
        model_args["hidden_width"] = trial.suggest_categorical("hidden_width", [128, 256, 512])
    epochs = suggest_epochs(trial, context)
    return TrialConfig(
        model="convnet",
        model_args=model_args,
        **suggest_optimizer(trial),
        **suggest_schedule(trial, epochs),
        batch_size=trial.suggest_categorical("batch_size", [64, 128, 256, 512]),
        epochs=epochs,
        augment=suggest_augment(trial),
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.2),
        seed=context.seed + trial.number,
        dataset=context.dataset,
    )
