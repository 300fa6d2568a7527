"""Residual networks: ResNet-9 (DAWNBench), ResNet-10/18 with report 002's five block
orderings, and report 000's RN / RR residual conv encoders."""

import optuna

from search.training.config import TrialConfig
from spaces.common import (
    ALL_ACTIVATIONS,
    AUGMENT_OFF,
    TRAINING_DEFAULTS,
    suggest_augment,
    suggest_masked_pretraining,
    suggest_training,
)
from spaces.registry import SpaceContext, WarmStart, register_space, register_warm_starts


@register_space("resnet")
def resnet(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """ResNet-9, ResNet-10/18 (five residual block orderings) or RN/RR (report 000, named by
    block count: RN04, RR32): width, depth, activation, downsampling by stride or max-pool,
    optimizer (one or two phases), schedule, batch size, init, regularisation, augmentation,
    and report 000's masked pre-training before it."""
    family = trial.suggest_categorical("family", ["resnet9", "resnet", "rn"])
    activation = trial.suggest_categorical("activation", ALL_ACTIVATIONS)
    if family == "rn":
        model_args = {
            "width": trial.suggest_categorical("rn_width", [16, 32]),  # C, kept by every block
            "blocks": trial.suggest_int("rn_blocks", 2, 32),  # N: RN04 has 4, RR32 32
            "reinject": trial.suggest_categorical("rn_reinject", [False, True]),  # RR
            "spatial_dropout": trial.suggest_float("rn_spatial_dropout", 0.0, 0.4),
            "activation": activation,
        }
    else:
        model_args = {
            "width": trial.suggest_categorical("width", [16, 32, 64]),  # first stage's channels
            "activation": activation,
            "downsample": trial.suggest_categorical("downsample", ["stride", "maxpool"]),
        }
    if family == "resnet":
        model_args["depth"] = trial.suggest_categorical("depth", [10, 18])
        model_args["block"] = trial.suggest_categorical(
            "block",
            ["original", "bn_after_add", "act_before_add", "act_preact", "full_preact"],
        )
    # report 000 tried batches of 16
    training = suggest_training(trial, context, batch_sizes=(16, 32, 64, 128, 256, 512, 1024))
    augment, training["second_phase"] = suggest_masked_pretraining(
        trial, training, suggest_augment(trial)
    )
    return TrialConfig(model=family, model_args=model_args, augment=augment, **training)


register_warm_starts(
    "resnet",
    WarmStart(
        "report 002: ResNet-9 with one-cycle and Adam, 92% in 12 epochs",
        {
            **TRAINING_DEFAULTS, **AUGMENT_OFF, "family": "resnet9", "width": 64,
            "activation": "relu", "downsample": "maxpool", "optimizer": "adam",
            "adam_beta2": 0.999, "adam_lr": 0.01, "adam_weight_decay": 1e-4, "two_phase": False,
            "schedule": "onecycle", "onecycle_pct_start": 0.25, "batch_size": 512, "flip": True,
            "crop_padding": 4, "cutout_size": 8, "masked_pretraining": False,
        },
    ),
    WarmStart(
        "report 002: ResNet-18, full pre-activation, max-pool downsampling, Mish, cutout, "
        "label smoothing, Adam with cosine warm-up then SGD with cosine, 95.65%",
        {
            **TRAINING_DEFAULTS, **AUGMENT_OFF, "family": "resnet", "width": 64, "depth": 18,
            "block": "full_preact", "activation": "mish", "downsample": "maxpool",
            "optimizer": "adam", "adam_beta2": 0.999, "adam_lr": 1e-3, "adam_weight_decay": 5e-4,
            "schedule": "cosine", "warmup_fraction": 0.05, "two_phase": True,
            "phase2_start": 0.5, "phase2_lr": 0.01, "phase2_weight_decay": 5e-4,
            "batch_size": 128, "label_smoothing": 0.1, "flip": True, "crop_padding": 4,
            "cutout_size": 16,
        },
    ),
    WarmStart(
        "report 000: RR32 (32 blocks at 16 channels, the input re-injected into every block), "
        "LeakyReLU, spatial dropout 1/3, AdamW, gradient clipping; pre-trained on 4x4-masked "
        "images (p 0.9), then fine-tuned with random crops",
        {
            **TRAINING_DEFAULTS, **AUGMENT_OFF, "family": "rn", "rn_width": 16,
            "rn_blocks": 32, "rn_reinject": True, "rn_spatial_dropout": 1 / 3,
            "activation": "leaky_relu", "optimizer": "adamw", "adam_beta2": 0.999,
            "adam_lr": 1e-3, "adamw_weight_decay": 0.01, "two_phase": False,
            "schedule": "constant", "warmup_fraction": 0.0, "batch_size": 128,
            "grad_clip_norm": 1.0, "crop_padding": 4, "masked_pretraining": True,
            "pretrain_mask_block": 4, "pretrain_mask_p": 0.9, "pretrain_fraction": 0.5,
        },
    ),
)  # fmt: skip
