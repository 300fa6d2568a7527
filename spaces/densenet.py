"""Report 002's light DenseNet: depth, growth rate, compression and bottleneck."""

import optuna

from search.training.config import TrialConfig
from spaces.common import (
    ALL_ACTIVATIONS,
    AUGMENT_OFF,
    TRAINING_DEFAULTS,
    suggest_augment,
    suggest_training,
)
from spaces.registry import SpaceContext, WarmStart, register_space, register_warm_starts


@register_space("densenet")
def densenet(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """DenseNet(-BC) with three dense blocks: depth 22-100, growth rate, compression at the
    transitions, bottleneck layers, activation."""
    model_args = {
        # 4 + a multiple of 6, so that the blocks split evenly with or without the bottleneck
        "depth": trial.suggest_categorical("depth", [22, 40, 58, 76, 100]),
        "growth_rate": trial.suggest_categorical("growth_rate", [8, 12, 16, 24]),  # channels
        "compression": trial.suggest_float("compression", 0.5, 1.0),
        "bottleneck": trial.suggest_categorical("bottleneck", [True, False]),
        "activation": trial.suggest_categorical("activation", ALL_ACTIVATIONS),
    }
    return TrialConfig(
        model="densenet",
        model_args=model_args,
        augment=suggest_augment(trial),
        **suggest_training(trial, context, batch_sizes=(32, 64, 128, 256, 512)),
    )


register_warm_starts(
    "densenet",
    WarmStart(
        "report 002: a light DenseNet-BC (0.55M parameters here; the report's 0.61M reached "
        "91.27% in 80 epochs), SGD with cosine decay, cutout, label smoothing",
        {
            **TRAINING_DEFAULTS, **AUGMENT_OFF, "depth": 58, "growth_rate": 16,
            "compression": 0.5, "bottleneck": True, "activation": "relu", "optimizer": "sgd",
            "sgd_momentum": 0.9, "sgd_nesterov": True, "sgd_lr": 0.1, "sgd_weight_decay": 5e-4,
            "schedule": "cosine", "warmup_fraction": 0.0, "batch_size": 128,
            "label_smoothing": 0.1, "flip": True, "crop_padding": 4, "cutout_size": 16,
        },
    ),
)  # fmt: skip
