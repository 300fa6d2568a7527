"""Plain conv stacks: depth, width, kernel, channel growth, batch norm, head and dropout."""

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


@register_space("convnet")
def convnet(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """Conv stacks (LeNet-5 to report 004's 5-block net): blocks, width, kernel 3/5/7,
    channel growth, batch norm, strided stem, spatial dropout, pooled or flattened head,
    1-3 linear layers, input resize."""
    linear_layers = trial.suggest_int("linear_layers", 1, 3)
    model_args = {
        "blocks": trial.suggest_int("blocks", 2, 5),
        "width": trial.suggest_categorical("width", [16, 32, 64]),  # channels of the first block
        "kernel_size": trial.suggest_categorical("kernel_size", [3, 5, 7]),
        "growth": trial.suggest_categorical("growth", ["double", "fixed"]),
        "batch_norm": trial.suggest_categorical("batch_norm", [True, False]),
        "activation": trial.suggest_categorical("activation", ALL_ACTIVATIONS),
        "stem_stride": trial.suggest_categorical("stem_stride", [1, 2, 3]),
        "head": trial.suggest_categorical("head", ["gap", "flatten"]),
        "linear_layers": linear_layers,
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "spatial_dropout": trial.suggest_float("spatial_dropout", 0.0, 0.3),
    }
    if linear_layers > 1:
        model_args["hidden_width"] = trial.suggest_categorical("hidden_width", [128, 256, 512])
    return TrialConfig(
        model="convnet",
        model_args=model_args,
        augment=suggest_augment(trial),
        # 0 keeps the dataset's size; report 004 upsampled CIFAR to STL-10's 96 x 96
        image_size=trial.suggest_categorical("image_size", [0, 64, 96]),
        **suggest_training(trial, context),
    )


register_warm_starts(
    "convnet",
    WarmStart(
        "report 004: the improved 5-block ConvNet (stride-3 stem on 96x96 inputs, batch norm, "
        "3 linear layers with dropout), SGD + one-cycle, heavy augmentation; 72.1% on CIFAR-100",
        {
            **TRAINING_DEFAULTS, **AUGMENT_OFF, "linear_layers": 3, "blocks": 5, "width": 64,
            "kernel_size": 3, "growth": "double", "batch_norm": True, "activation": "relu",
            "stem_stride": 3, "head": "gap", "dropout": 0.2, "spatial_dropout": 0.0,
            "hidden_width": 512, "image_size": 96, "optimizer": "sgd", "sgd_momentum": 0.9,
            "sgd_nesterov": False, "sgd_lr": 1e-3, "sgd_weight_decay": 1e-4,
            "schedule": "onecycle", "onecycle_pct_start": 0.3, "batch_size": 128, "flip": True,
            "vflip": True, "crop_padding": 4, "geometric": "affine", "affine_degrees": 10.0,
            "affine_translate": 0.1, "affine_scale": 0.1, "affine_shear": 5.0, "jitter": 0.2,
            "grayscale_p": 0.1,
        },
    ),
)  # fmt: skip
