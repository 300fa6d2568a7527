"""Plain conv stacks: LeNet-5 as report 004 trained it, and blocks of conv [+ BN] + activation
+ pool with depth, width, kernels, channel growth, stem, head and dropout."""

import optuna

from search.training.config import TrialConfig
from spaces.common import (
    ALL_ACTIVATIONS,
    REPORT_004_AUGMENT,
    TRAINING_DEFAULTS,
    suggest_augment,
    suggest_training,
)
from spaces.registry import SpaceContext, WarmStart, register_space, register_warm_starts


def suggest_blocks(trial: optuna.Trial, activation: str) -> dict:
    """The conv-block stack's arguments (models/convnet.py)."""
    blocks = trial.suggest_int("blocks", 2, 5)
    kernel = trial.suggest_categorical("kernel_size", [3, 5, 7])
    second = trial.suggest_categorical("second_kernel_size", [3, 5, 7])  # report 004: 5
    stem_stride = trial.suggest_categorical("stem_stride", [1, 2, 3])
    linear_layers = trial.suggest_int("linear_layers", 1, 3)
    model_args = {
        "blocks": blocks,
        "width": trial.suggest_categorical("width", [16, 32, 64]),  # channels of the first block
        "kernel_sizes": [kernel, second, *[kernel] * (blocks - 2)],
        "growth": trial.suggest_categorical("growth", ["double", "fixed"]),
        "batch_norm": trial.suggest_categorical("batch_norm", [True, False]),
        "activation": activation,
        "stem_stride": stem_stride,
        "stem_padding": 0 if stem_stride > 1 else None,  # a strided stem is unpadded (004)
        "pool_last": trial.suggest_categorical("pool_last", [True, False]),
        "head": trial.suggest_categorical("head", ["gap", "flatten"]),
        "linear_layers": linear_layers,
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "dropout_position": trial.suggest_categorical("dropout_position", ["every", "last"]),
        "spatial_dropout": trial.suggest_float("spatial_dropout", 0.0, 0.3),
    }
    if linear_layers > 1:
        model_args["hidden_width"] = trial.suggest_categorical("hidden_width", [128, 256, 512])
    return model_args


@register_space("convnet")
def convnet(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """Conv stacks from LeNet-5 to report 004's 5-block net: blocks, width, kernel 3/5/7 (the
    second block's apart), channel growth, batch norm, strided stem, pooling before the head,
    pooled or flattened head, 1-3 linear layers, dropout, spatial dropout, input resize."""
    family = trial.suggest_categorical("family", ["convnet", "lenet5"])
    activation = trial.suggest_categorical("activation", ALL_ACTIVATIONS)
    if family == "lenet5":
        model_args = {
            "activation": activation,
            "pool": trial.suggest_categorical("pool", ["max", "avg"]),
        }
    else:
        model_args = suggest_blocks(trial, activation)
    return TrialConfig(
        model=family,
        model_args=model_args,
        augment=suggest_augment(trial),
        # 0 keeps the dataset's size; report 004 upsampled CIFAR to STL-10's 96 x 96
        image_size=trial.suggest_categorical("image_size", [0, 64, 96]),
        **suggest_training(trial, context),
    )


# Report 004 trained every network alike: SGD lr 1e-3, momentum 0.9, decay 1e-4, one-cycle,
# batch 128, its heavy augmentation, on CIFAR upsampled to 96 x 96.
REPORT_004_TRAINING = {
    **TRAINING_DEFAULTS, **REPORT_004_AUGMENT, "image_size": 96, "optimizer": "sgd",
    "sgd_momentum": 0.9, "sgd_nesterov": False, "sgd_lr": 1e-3, "sgd_weight_decay": 1e-4,
    "schedule": "onecycle", "onecycle_pct_start": 0.3, "batch_size": 128,
}  # fmt: skip

register_warm_starts(
    "convnet",
    WarmStart(
        "report 004: the improved ConvNet, 5 blocks of 64-1024 channels (an unpadded 3x3 "
        "stride-3 stem on 96x96 inputs, a 5x5 second block, batch norm, no pooling before the "
        "global average), linear 1024-512-512 with one dropout of 0.5 before the last; SGD + "
        "one-cycle, heavy augmentation; 72.1% on CIFAR-100",
        {
            **REPORT_004_TRAINING, "family": "convnet", "activation": "relu", "blocks": 5,
            "kernel_size": 3, "second_kernel_size": 5, "stem_stride": 3, "linear_layers": 3,
            "width": 64, "growth": "double", "batch_norm": True, "pool_last": False,
            "head": "gap", "dropout": 0.5, "dropout_position": "last", "spatial_dropout": 0.0,
            "hidden_width": 512,
        },
    ),
    WarmStart(
        "report 004: LeNet-5 (unpadded 5x5 convolutions to 6 and 16 channels, 120-84 hidden) "
        "with the same training on 96x96 inputs; 43.12% on CIFAR-100",
        {**REPORT_004_TRAINING, "family": "lenet5", "activation": "relu", "pool": "max"},
    ),
)  # fmt: skip
