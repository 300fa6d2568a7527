"""An airbench-class search: the fastnet model, few epochs, big batches and airbench's
decoupled learning-rate / weight-decay parameterisation, to find configs at the frontier of
fast CIFAR-10 training."""

import optuna

from search.config import TrialConfig
from spaces.common import suggest_epochs
from spaces.registry import SpaceContext, WarmStart, register_space, register_warm_starts


def sgd_arguments(
    lr_per_1024: float, weight_decay_per_1024: float, momentum: float, batch_size: int
) -> dict:
    """airbench's parameterisation -> torch SGD on a mean loss. airbench states lr and decay
    per 1024 examples and divides both by 1024 (1 + 1 / (1 - momentum)), the steps a momentum
    buffer averages over, so that neither needs re-tuning when the momentum or the batch size
    changes. On a mean loss torch's lr is then that lr times the batch size, and its weight
    decay the decay alone (the per-step shrink lr x decay comes out the same)."""
    kilo_steps = 1024 * (1 + 1 / (1 - momentum))
    return {
        "optimizer": "sgd",
        "optimizer_args": {"momentum": momentum, "nesterov": True},
        "lr": lr_per_1024 * batch_size / kilo_steps,
        "weight_decay": weight_decay_per_1024 / kilo_steps,
    }


@register_space("fast")
def fast(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """fastnet (whitening stem, three conv groups, GELU, scaled logits) with Nesterov SGD in
    airbench's decoupled lr / weight decay, linear warm-up and decay, label smoothing,
    flip + translate (+ cutout), and test-time augmentation."""
    batch_size = trial.suggest_categorical("batch_size", [256, 512, 1024])
    epochs = suggest_epochs(trial, context)
    optimizer = sgd_arguments(
        trial.suggest_float("lr_per_1024", 2.0, 40.0, log=True),
        trial.suggest_float("weight_decay_per_1024", 3e-3, 0.1, log=True),
        trial.suggest_float("momentum", 0.7, 0.95),
        batch_size,
    )
    augment = {"flip": {}, "crop": {"padding": trial.suggest_categorical("translate", [0, 2, 4])}}
    cutout = trial.suggest_categorical("cutout_size", [0, 8, 12])
    if cutout:
        augment["cutout"] = {"size": cutout}
    return TrialConfig(
        model="fastnet",
        model_args={
            "width": trial.suggest_categorical("width", [32, 48, 64, 96]),  # first group
            "widen": trial.suggest_categorical("widen", [2, 3, 4]),  # later groups: x widen
            "activation": trial.suggest_categorical("activation", ["gelu", "relu", "silu"]),
        },
        **optimizer,
        schedule="polynomial",  # power 1: airbench's linear decay to 0 after the warm-up
        schedule_args={"power": 1.0},
        warmup_fraction=trial.suggest_float("warmup_fraction", 0.05, 0.4),
        batch_size=batch_size,
        epochs=epochs,
        augment=augment,
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.3),
        tta=trial.suggest_categorical("tta", ["none", "mirror", "mirror_translate"]),
        seed=context.seed + trial.number,
        dataset=context.dataset,
    )


register_warm_starts(
    "fast",
    WarmStart(
        "airbench94's hyperparameters (lr 11.5 and decay 0.0153 per 1024 examples, momentum "
        "0.85, batch 1024, label smoothing 0.2, translate 2, mirror + translate at test "
        "time): 94% on CIFAR-10 in ~10 epochs",
        {
            "batch_size": 1024, "lr_per_1024": 11.5, "weight_decay_per_1024": 0.0153,
            "momentum": 0.85, "translate": 2, "cutout_size": 0, "width": 64, "widen": 4,
            "activation": "gelu", "warmup_fraction": 0.23, "label_smoothing": 0.2,
            "tta": "mirror_translate",
        },
    ),
)  # fmt: skip
