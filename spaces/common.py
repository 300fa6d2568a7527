"""Choices that many spaces share: optimizer (and a second phase), schedule, warm-up, batch
size, initialisation, regularisation and augmentation.

Ranges are wide enough to hold the known-good CIFAR settings (SGD lr 0.1-0.4 with momentum 0.9
and weight decay 5e-4; Adam(W) lr 1e-3 with decoupled decay 0.05) and the reports' choices,
and narrow enough that most trials train. Each returns TrialConfig fields as a dict.
"""

from typing import Any

import optuna

from search.training.config import SecondPhase
from spaces.registry import SpaceContext

# Adaptive optimizers: name -> (lr range, weight decay range and its parameter name). Coupled
# L2 decay (Adam, RAdam, Ranger) is divided by the adaptive step, so it is far smaller than the
# decoupled decay of AdamW, LAMB and Lion; Lion's sign updates want a 3-10x smaller lr.
ADAPTIVE = {
    "adam": ((1e-4, 1e-2), (1e-7, 1e-3), "adam_weight_decay"),
    "radam": ((1e-4, 1e-2), (1e-7, 1e-3), "adam_weight_decay"),
    "adamw": ((1e-4, 1e-2), (1e-4, 0.5), "adamw_weight_decay"),
    "lamb": ((1e-4, 2e-2), (1e-3, 0.1), "lamb_weight_decay"),
    "lion": ((1e-5, 1e-3), (1e-3, 3.0), "lion_weight_decay"),
    "ranger": ((1e-4, 1e-2), (1e-7, 1e-3), "adam_weight_decay"),
}
WITH_BETA2 = {"adam", "radam", "adamw", "lamb", "lion"}
SCHEDULES = ["constant", "step", "exponential", "polynomial", "cosine", "onecycle", "cyclic",
             "plateau"]  # fmt: skip
SELF_WARMING = {"onecycle", "cyclic"}  # they start low by themselves: no separate warm-up
BATCH_SIZES = (16, 32, 64, 128, 256, 512, 1024)
# Choices are part of a space's schema (a study stores them), so they are spelled out here, and
# the spaces load without torch; tests/test_spaces.py keeps them equal to models.layers.ACTIVATIONS.
ALL_ACTIVATIONS = ["relu", "leaky_relu", "prelu", "elu", "celu", "gelu", "silu", "mish", "tanh",
                   "sigmoid"]  # fmt: skip


def suggest_sgd(trial: optuna.Trial) -> dict[str, Any]:
    momentum = trial.suggest_float("sgd_momentum", 0.0, 0.96)  # report 000 used 0.96
    return {
        "optimizer": "sgd",
        "optimizer_args": {
            "momentum": momentum,
            "nesterov": momentum > 0 and trial.suggest_categorical("sgd_nesterov", [False, True]),
        },
        "lr": trial.suggest_float("sgd_lr", 1e-3, 1.0, log=True),  # per mean-loss step
        "weight_decay": trial.suggest_float("sgd_weight_decay", 1e-5, 1e-2, log=True),  # L2
    }


def suggest_optimizer(trial: optuna.Trial) -> dict[str, Any]:
    optimizer = trial.suggest_categorical("optimizer", ["sgd", *ADAPTIVE])
    if optimizer == "sgd":
        return suggest_sgd(trial)
    (lr_low, lr_high), (decay_low, decay_high), decay_name = ADAPTIVE[optimizer]
    # Lion's lr range differs by 10x from the others', so it is a parameter of its own.
    lr_name = "lion_lr" if optimizer == "lion" else "adam_lr"
    arguments = {}
    if optimizer in WITH_BETA2:
        arguments["beta2"] = trial.suggest_float("adam_beta2", 0.95, 0.999)
    return {
        "optimizer": optimizer,
        "optimizer_args": arguments,
        "lr": trial.suggest_float(lr_name, lr_low, lr_high, log=True),
        "weight_decay": trial.suggest_float(decay_name, decay_low, decay_high, log=True),
    }


def suggest_second_phase(trial: optuna.Trial, first_optimizer: str) -> SecondPhase | None:
    """Report 002's mixed run: an adaptive optimizer converges fast, then SGD with cosine
    decay finishes (Adam then SGD reached its 95.65%). Offered after adaptive ones only."""
    if first_optimizer == "sgd" or not trial.suggest_categorical("two_phase", [False, True]):
        return None
    return SecondPhase(
        start_fraction=trial.suggest_float("phase2_start", 0.3, 0.8),  # of the epochs
        optimizer="sgd",
        optimizer_args={"momentum": 0.9, "nesterov": True},
        lr=trial.suggest_float("phase2_lr", 1e-3, 0.3, log=True),
        weight_decay=trial.suggest_float("phase2_weight_decay", 1e-5, 1e-2, log=True),
        schedule="cosine",
    )


def suggest_schedule(trial: optuna.Trial, epochs: int) -> dict[str, Any]:
    """A schedule and its arguments, its lengths as fractions of the phase it runs in (what
    the per-epoch parameters stand for over the study's `epochs`)."""
    schedule = trial.suggest_categorical("schedule", SCHEDULES)
    arguments: dict[str, Any] = {}
    if schedule == "step":
        arguments = {
            "step_fraction": trial.suggest_float("step_fraction", 0.2, 0.6),  # per decay
            "gamma": trial.suggest_float("step_gamma", 0.05, 0.5, log=True),
        }
    elif schedule == "exponential":
        gamma = trial.suggest_float("exponential_gamma", 0.7, 0.99)  # per epoch
        arguments = {"gamma_per_run": gamma**epochs}
    elif schedule == "polynomial":
        arguments = {"power": trial.suggest_float("polynomial_power", 0.5, 3.0, log=True)}
    elif schedule == "onecycle":
        arguments = {"pct_start": trial.suggest_float("onecycle_pct_start", 0.1, 0.5)}
    elif schedule == "cyclic":
        arguments = {
            "cycle_fraction": trial.suggest_float("cyclic_cycle_fraction", 0.1, 0.5),
            "base_fraction": trial.suggest_float("cyclic_base_fraction", 0.01, 0.3, log=True),
        }
    elif schedule == "plateau":
        patience = trial.suggest_int("plateau_patience", 1, 10)  # epochs
        arguments = {
            "factor": trial.suggest_float("plateau_factor", 0.1, 0.5),
            "patience_fraction": patience / epochs,
        }
    warmup = 0.0 if schedule in SELF_WARMING else trial.suggest_float("warmup_fraction", 0.0, 0.2)
    return {"schedule": schedule, "schedule_args": arguments, "warmup_fraction": warmup}


def suggest_training(
    trial: optuna.Trial, context: SpaceContext, batch_sizes: tuple[int, ...] = BATCH_SIZES
) -> dict[str, Any]:
    """Every TrialConfig field that is not the model or the augmentation. Every trial plans
    the study's whole budget (--epochs), so that the pruner, which decides after each epoch,
    compares trials at the same point of comparable schedules; it cuts the hopeless ones short."""
    epochs = context.epochs
    optimizer = suggest_optimizer(trial)
    return {
        **optimizer,
        **suggest_schedule(trial, epochs),
        "second_phase": suggest_second_phase(trial, optimizer["optimizer"]),
        "init": trial.suggest_categorical("init", ["default", "xavier", "kaiming"]),
        "batch_size": trial.suggest_categorical("batch_size", list(batch_sizes)),
        "epochs": epochs,
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
        # max global gradient norm; 0 is off (report 001 clipped at 0.1)
        "grad_clip_norm": trial.suggest_categorical("grad_clip_norm", [0.0, 0.1, 1.0, 10.0]),
        "seed": context.trial_seed(trial),
        "dataset": context.dataset,
        "classes": list(context.classes),
    }


def suggest_augment(trial: optuna.Trial) -> dict[str, dict[str, Any]]:
    """The reports' augmentations, in the order they are applied; a zero or "none" means
    not used. Sizes in pixels, angles in degrees, colour strengths in standard deviations."""
    augment: dict[str, dict[str, Any]] = {}
    if trial.suggest_categorical("flip", [True, False]):
        augment["flip"] = {}
    if trial.suggest_categorical("vflip", [False, True]):  # report 000 flipped both ways
        augment["vflip"] = {}
    # report 004's random resized crop: the smallest area fraction kept (1.0: off)
    area = trial.suggest_categorical("resized_crop_scale", [1.0, 0.5, 0.25, 0.08])
    if area < 1:
        augment["resized_crop"] = {"scale_low": area}
    padding = trial.suggest_categorical("crop_padding", [0, 2, 4])  # pixels per side
    if padding:
        augment["crop"] = {"padding": padding}
    geometric = trial.suggest_categorical("geometric", ["none", "rotate", "affine"])
    if geometric == "rotate":
        augment["rotate"] = {"degrees": trial.suggest_float("rotate_degrees", 5.0, 30.0)}
    elif geometric == "affine":
        zoom = trial.suggest_float("affine_scale", 0.0, 0.2)  # zoom in or out by up to this
        augment["affine"] = {
            "degrees": trial.suggest_float("affine_degrees", 0.0, 20.0),
            "translate": trial.suggest_float("affine_translate", 0.0, 0.15),  # of the size
            "scale_low": 1 - zoom,
            "scale_high": 1 + zoom,
            "shear": trial.suggest_float("affine_shear", 0.0, 15.0),
        }
    # report 004's perspective warp: how far corners move, as a fraction of half the side
    distortion = trial.suggest_categorical("perspective_distortion", [0.0, 0.2, 0.5])
    if distortion:
        augment["perspective"] = {"distortion": distortion}
    jitter = trial.suggest_categorical("jitter", [0.0, 0.1, 0.2, 0.4])
    if jitter:
        augment["jitter"] = {"brightness": jitter, "contrast": jitter, "saturation": jitter}
    grayscale = trial.suggest_categorical("grayscale_p", [0.0, 0.1, 0.2])
    if grayscale:
        augment["grayscale"] = {"p": grayscale}
    cutout = trial.suggest_categorical("cutout_size", [0, 8, 12, 16])  # square side
    if cutout:
        augment["cutout"] = {"size": cutout}
    mask_block = trial.suggest_categorical("mask_block", [0, 1, 2, 4])  # report 000's masking
    if mask_block:
        augment["mask"] = {"block": mask_block, "p": trial.suggest_float("mask_p", 0.05, 0.9)}
    mixing = trial.suggest_categorical("mixing", ["none", "mixup", "cutmix"])
    if mixing == "mixup":
        augment["mixup"] = {"alpha": trial.suggest_float("mixup_alpha", 0.1, 1.0, log=True)}
    elif mixing == "cutmix":
        augment["cutmix"] = {"alpha": trial.suggest_float("cutmix_alpha", 0.2, 2.0, log=True)}
    return augment


# Starting points for warm starts: every augmentation off, and the training knobs the reports
# did not touch at their neutral values. A warm start overrides what its report chose.
AUGMENT_OFF = {
    "flip": False, "vflip": False, "resized_crop_scale": 1.0, "crop_padding": 0,
    "geometric": "none", "perspective_distortion": 0.0, "jitter": 0.0, "grayscale_p": 0.0,
    "cutout_size": 0, "mask_block": 0, "mixing": "none",
}  # fmt: skip
TRAINING_DEFAULTS = {"init": "default", "label_smoothing": 0.0, "grad_clip_norm": 0.0}
# Report 004's augmentation, the same for all its networks and its fine-tuning: random resized
# crops, both flips, affine and perspective warps, colour jitter and random greyscale.
REPORT_004_AUGMENT = {
    **AUGMENT_OFF, "flip": True, "vflip": True, "resized_crop_scale": 0.5,
    "geometric": "affine", "affine_degrees": 10.0, "affine_translate": 0.1, "affine_scale": 0.1,
    "affine_shear": 5.0, "perspective_distortion": 0.2, "jitter": 0.2, "grayscale_p": 0.1,
}  # fmt: skip


def suggest_masked_pretraining(
    trial: optuna.Trial, training: dict[str, Any], augment: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Report 000's two stages: first train on heavily masked images alone, then (a fresh
    optimizer and schedule, as if the weights were saved and fine-tuned) with the sampled
    augmentation. (augment of the first phase, second_phase); not offered where the
    optimizer already switches part-way."""
    if training["second_phase"] or not trial.suggest_categorical(
        "masked_pretraining", [False, True]
    ):
        return augment, training["second_phase"]
    masked = {
        "mask": {
            "block": trial.suggest_categorical("pretrain_mask_block", [1, 2, 4]),  # pixels
            "p": trial.suggest_float("pretrain_mask_p", 0.5, 0.9),
        }
    }
    second_phase = SecondPhase(
        start_fraction=trial.suggest_float("pretrain_fraction", 0.3, 0.8),  # of the epochs
        augment=augment,
        optimizer=training["optimizer"],
        optimizer_args=training["optimizer_args"],
        lr=training["lr"],
        weight_decay=training["weight_decay"],
        schedule=training["schedule"],
        schedule_args=training["schedule_args"],
    )
    return masked, second_phase
