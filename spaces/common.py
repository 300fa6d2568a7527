"""Choices that many spaces share: optimizer, schedule, epochs and augmentation.

Ranges are wide enough to hold the known-good CIFAR settings (SGD lr 0.1-0.4 with momentum 0.9
and weight decay 5e-4; Adam(W) lr 1e-3 with decoupled decay 0.05) and narrow enough that most
trials train. Each returns TrialConfig fields as a dict.
"""

import math
from typing import Any

import optuna

from spaces.registry import SpaceContext

# Adaptive optimizers: name -> (lr range, weight decay range and its parameter name). Coupled
# L2 decay (Adam, RAdam, Ranger) is divided by the adaptive step, so it is far smaller than the
# decoupled decay of AdamW, LAMB and Lion; Lion's sign updates want a 3-10x smaller lr.
ADAPTIVE = {
    "adam": ((1e-4, 1e-2), (1e-7, 1e-3), "adam_weight_decay"),
    "radam": ((1e-4, 1e-2), (1e-7, 1e-3), "adam_weight_decay"),
    "adamw": ((1e-4, 1e-2), (1e-3, 0.5), "adamw_weight_decay"),
    "lamb": ((1e-4, 2e-2), (1e-3, 0.1), "lamb_weight_decay"),
    "lion": ((1e-5, 1e-3), (1e-3, 3.0), "lion_weight_decay"),
    "ranger": ((1e-4, 1e-2), (1e-7, 1e-3), "adam_weight_decay"),
}
WITH_BETA2 = {"adam", "radam", "adamw", "lamb", "lion"}


def suggest_optimizer(trial: optuna.Trial) -> dict[str, Any]:
    optimizer = trial.suggest_categorical("optimizer", ["sgd", *ADAPTIVE])
    if optimizer == "sgd":
        momentum = trial.suggest_float("sgd_momentum", 0.0, 0.95)
        return {
            "optimizer": "sgd",
            "optimizer_args": {
                "momentum": momentum,
                "nesterov": momentum > 0
                and trial.suggest_categorical("sgd_nesterov", [False, True]),
            },
            "lr": trial.suggest_float("sgd_lr", 5e-3, 1.0, log=True),  # per mean-loss step
            "weight_decay": trial.suggest_float("sgd_weight_decay", 1e-5, 1e-2, log=True),  # L2
        }
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


def suggest_epochs(trial: optuna.Trial, context: SpaceContext) -> int:
    """From half the budget to all of it: the schedule stretches over the epochs chosen."""
    return trial.suggest_int("epochs", math.ceil(context.max_epochs / 2), context.max_epochs)


def suggest_schedule(trial: optuna.Trial, epochs: int) -> dict[str, Any]:
    schedule = trial.suggest_categorical(
        "schedule",
        ["constant", "step", "exponential", "polynomial", "cosine", "onecycle", "cyclic"],
    )
    arguments: dict[str, Any] = {}
    if schedule == "step":
        fraction = trial.suggest_float("step_fraction", 0.2, 0.6)  # of the epochs, per decay
        arguments = {
            "step_epochs": max(1, round(fraction * epochs)),
            "gamma": trial.suggest_float("step_gamma", 0.05, 0.5, log=True),
        }
    elif schedule == "exponential":
        arguments = {"gamma": trial.suggest_float("exponential_gamma", 0.7, 0.99)}  # per epoch
    elif schedule == "polynomial":
        arguments = {"power": trial.suggest_float("polynomial_power", 0.5, 3.0, log=True)}
    elif schedule == "cosine":
        arguments = {"warmup_fraction": trial.suggest_float("cosine_warmup_fraction", 0.0, 0.2)}
    elif schedule == "onecycle":
        arguments = {"pct_start": trial.suggest_float("onecycle_pct_start", 0.1, 0.5)}
    elif schedule == "cyclic":
        cycle = trial.suggest_float("cyclic_cycle_fraction", 0.1, 0.5)  # of the epochs
        arguments = {
            "cycle_epochs": cycle * epochs,
            "base_fraction": trial.suggest_float("cyclic_base_fraction", 0.01, 0.3, log=True),
        }
    return {"schedule": schedule, "schedule_args": arguments}


def suggest_augment(trial: optuna.Trial) -> dict[str, dict[str, Any]]:
    """Flip, translate (crop of the padded image) and cutout; a zero size means none."""
    augment: dict[str, dict[str, Any]] = {}
    if trial.suggest_categorical("flip", [True, False]):
        augment["flip"] = {}
    padding = trial.suggest_categorical("crop_padding", [0, 2, 4])  # pixels per side
    if padding:
        augment["crop"] = {"padding": padding}
    cutout = trial.suggest_categorical("cutout_size", [0, 8, 12, 16])  # square side, pixels
    if cutout:
        augment["cutout"] = {"size": cutout}
    return augment
