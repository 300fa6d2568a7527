"""Fully connected baselines on flattened pixels: seconds per trial even on a CPU."""

import optuna

from search.config import TrialConfig
from spaces.common import suggest_epochs, suggest_optimizer, suggest_schedule
from spaces.registry import SpaceContext, register_space


@register_space("mlp")
def mlp(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """MLP on flattened pixels: depth 1-4, width, dropout, activation, optimizer and schedule."""
    epochs = suggest_epochs(trial, context)
    return TrialConfig(
        model="mlp",
        model_args={
            "width": trial.suggest_categorical("width", [256, 512, 1024, 2048]),
            "depth": trial.suggest_int("depth", 1, 4),  # hidden layers
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "activation": trial.suggest_categorical("activation", ["relu", "gelu", "tanh"]),
        },
        **suggest_optimizer(trial),
        **suggest_schedule(trial, epochs),
        batch_size=trial.suggest_categorical("batch_size", [64, 128, 256, 512]),
        epochs=epochs,
        augment={"flip": {}} if trial.suggest_categorical("flip", [True, False]) else {},
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.2),
        seed=context.seed + trial.number,
        dataset=context.dataset,
    )
