"""Fully connected baselines on flattened pixels: seconds per trial even on a CPU."""

import optuna

from search.training.config import TrialConfig
from spaces.common import (
    ALL_ACTIVATIONS,
    AUGMENT_OFF,
    REPORT_004_AUGMENT,
    TRAINING_DEFAULTS,
    suggest_augment,
    suggest_training,
)
from spaces.registry import SpaceContext, WarmStart, register_space, register_warm_starts


@register_space("mlp")
def mlp(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """MLP on flattened pixels: 1-10 hidden layers, width (constant or halving), dropout,
    activation, optimizer, schedule and augmentation."""
    return TrialConfig(
        model="mlp",
        model_args={
            "width": trial.suggest_categorical("width", [128, 256, 512, 1024]),  # first layer
            "depth": trial.suggest_int("depth", 1, 10),  # hidden layers
            "taper": trial.suggest_categorical("taper", [False, True]),  # halve layer by layer
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "activation": trial.suggest_categorical("activation", ALL_ACTIVATIONS),
        },
        augment=suggest_augment(trial),
        # 0 keeps the dataset's size; report 004 fed its TwoLayerNet CIFAR upsampled to 96 x 96
        image_size=trial.suggest_categorical("image_size", [0, 64, 96]),
        # Tiny batches only slow an MLP down: no conv statistics to gain from their noise.
        **suggest_training(trial, context, batch_sizes=(64, 128, 256, 512, 1024)),
    )


register_warm_starts(
    "mlp",
    WarmStart(
        "report 000: the 'Naive' net, 9 hidden layers of 256, LeakyReLU, dropout 0.3, AdamW, "
        "gradient clipping, flips",
        {
            **TRAINING_DEFAULTS, **AUGMENT_OFF, "width": 256, "depth": 9, "taper": False,
            "dropout": 0.3, "activation": "leaky_relu", "optimizer": "adamw",
            "adam_beta2": 0.999, "adam_lr": 1e-3, "adamw_weight_decay": 0.01,
            "two_phase": False, "schedule": "constant", "warmup_fraction": 0.0,
            "batch_size": 128, "grad_clip_norm": 1.0, "flip": True, "vflip": True,
            "image_size": 0,
        },
    ),
    WarmStart(
        "report 004: the improved TwoLayerNet, 1024-512-256 on 96x96 inputs, SGD + one-cycle, "
        "its heavy augmentation; 24.06% on CIFAR-100",
        {
            **TRAINING_DEFAULTS, **REPORT_004_AUGMENT, "image_size": 96, "width": 1024,
            "depth": 3, "taper": True, "dropout": 0.0, "activation": "relu", "optimizer": "sgd",
            "sgd_momentum": 0.9, "sgd_nesterov": False, "sgd_lr": 1e-3,
            "sgd_weight_decay": 1e-4, "schedule": "onecycle", "onecycle_pct_start": 0.3,
            "batch_size": 128,
        },
    ),
)  # fmt: skip
