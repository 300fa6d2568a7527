"""ResNets on small images: ResNet-9 (DAWNBench) or pre-activation ResNet-10/18."""

import optuna

from search.config import TrialConfig
from spaces.common import suggest_augment, suggest_epochs, suggest_optimizer, suggest_schedule
from spaces.registry import SpaceContext, register_space


@register_space("resnet")
def resnet(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """ResNet-9 or pre-activation ResNet-10/18: width, activation, downsampling, optimizer,
    schedule, batch size, label smoothing and flip/translate/cutout augmentation."""
    family = trial.suggest_categorical("family", ["resnet9", "preact_resnet"])
    model_args = {
        "width": trial.suggest_categorical("width", [16, 32, 64]),  # channels of the first stage
        "activation": trial.suggest_categorical("activation", ["relu", "gelu", "silu", "mish"]),
        "downsample": trial.suggest_categorical("downsample", ["stride", "maxpool"]),
    }
    if family == "preact_resnet":
        model_args["depth"] = trial.suggest_categorical("preact_depth", [10, 18])
    epochs = suggest_epochs(trial, context)
    return TrialConfig(
        model=family,
        model_args=model_args,
        **suggest_optimizer(trial),
        **suggest_schedule(trial, epochs),
        batch_size=trial.suggest_categorical("batch_size", [128, 256, 512]),
        epochs=epochs,
        augment=suggest_augment(trial),
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.2),
        seed=context.seed + trial.number,
        dataset=context.dataset,
    )
