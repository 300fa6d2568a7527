"""Reports 001 and 003's Backbone net: stacked backbones of parallel conv blocks mixed by
weights computed from their input."""

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

MAX_CONV_LAYERS = 5  # in depth: every conv layer halves a 32-pixel map, 5 reach 1 pixel


@register_space("backbone")
def backbone(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """N backbones of K parallel branches of M conv layers (conv-BN-act-max-pool-dropout),
    gated by sigmoid weights from the input, a kernel (2, 3 or 5) per conv layer; linear or
    3-layer MLP head."""
    blocks = trial.suggest_int("blocks", 1, 4)  # N
    # M: the upper bound shrinks with N so that the net stays within MAX_CONV_LAYERS
    convs = trial.suggest_int("convs", 1, min(3, MAX_CONV_LAYERS // blocks))
    model_args = {
        "blocks": blocks,
        "parallel": trial.suggest_int("parallel", 1, 6),  # K
        "convs": convs,
        "width": trial.suggest_categorical("width", [16, 32, 64, 128]),  # first conv's channels
        # one per conv layer down the net: report 001's best run used 2 throughout
        "kernel_sizes": [
            trial.suggest_categorical(f"kernel_size_{layer}", [2, 3, 5])
            for layer in range(1, blocks * convs + 1)
        ],
        "activation": trial.suggest_categorical("activation", ALL_ACTIVATIONS),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "head": trial.suggest_categorical("head", ["linear", "mlp"]),
    }
    return TrialConfig(
        model="backbone",
        model_args=model_args,
        augment=suggest_augment(trial),
        **suggest_training(trial, context, batch_sizes=(32, 64, 128, 256, 512)),
    )


def kernels(size: int, layers: int = 4) -> dict[str, int]:
    return {f"kernel_size_{layer}": size for layer in range(1, layers + 1)}


# Report 001's "Deeper ConvBlock" runs (its appendix): 2 backbones x 3 parallel blocks x 2
# convs, channels 128-256 | 512-1024, dropout 0.2, Xavier init, AdamW 1e-3, reduce-on-plateau,
# batch 256, flip, crop and rotation.
REPORT_001 = {
    **TRAINING_DEFAULTS, **AUGMENT_OFF, "blocks": 2, "parallel": 3, "convs": 2, "width": 128,
    "activation": "relu", "dropout": 0.2, "head": "linear", "init": "xavier",
    "optimizer": "adamw", "adam_beta2": 0.999, "adam_lr": 1e-3, "adamw_weight_decay": 1e-4,
    "two_phase": False, "schedule": "plateau", "plateau_factor": 0.1, "plateau_patience": 10,
    "warmup_fraction": 0.0, "batch_size": 256, "grad_clip_norm": 0.1, "flip": True,
    "crop_padding": 4, "geometric": "rotate", "rotate_degrees": 10.0,
}  # fmt: skip

register_warm_starts(
    "backbone",
    WarmStart(
        "report 001: 2 backbones x 3 blocks x 2 convs, channels 128-1024, 2x2 kernels, dropout "
        "0.2, Xavier init, AdamW, reduce-on-plateau, gradient clipping 0.1; 91.38% (its best)",
        {**REPORT_001, **kernels(2)},
    ),
    WarmStart(
        "report 001: the same with 3x3 kernels; 90.51%",
        {**REPORT_001, **kernels(3)},
    ),
    WarmStart(
        "report 003: 4 blocks x 6 parallel convs, channels 64-512, dropout 0.1, MLP head, Adam "
        "with cosine warm-up (5 of 50 epochs); 89.6%",
        {
            **TRAINING_DEFAULTS, **AUGMENT_OFF, "blocks": 4, "parallel": 6, "convs": 1,
            "width": 64, **kernels(3), "activation": "relu", "dropout": 0.1, "head": "mlp",
            "optimizer": "adam", "adam_beta2": 0.999, "adam_lr": 1e-3, "adam_weight_decay": 1e-4,
            "two_phase": False, "schedule": "cosine", "warmup_fraction": 0.1, "batch_size": 128,
            "flip": True, "crop_padding": 4,
        },
    ),
)  # fmt: skip
