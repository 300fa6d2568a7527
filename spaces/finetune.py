"""Fine-tuning a trained network (--init-from a search.train checkpoint) on another dataset or
another set of classes (--classes): report 004's CIFAR-100 ConvNet fine-tuned on five STL-10
classes, or report 000's masked pre-training continued with crops."""

import optuna

from registry import UsageError
from search.training.config import TrialConfig
from spaces.common import (
    REPORT_004_AUGMENT,
    suggest_augment,
    suggest_optimizer,
    suggest_schedule,
)
from spaces.registry import (
    SpaceContext,
    WarmStart,
    register_fine_tuning,
    register_space,
    register_warm_starts,
)

# What is frozen throughout: nothing, the first layer, or everything but the new head.
FREEZING = {"none": {}, "stem": {"stem": 0}, "body": {"body": 0}}


@register_space("finetune")
def finetune(trial: optuna.Trial, context: SpaceContext) -> TrialConfig:
    """The network of --init-from, its head replaced for the study's classes and evaluated
    with its own test-time augmentation: learning rate and optimizer, a multiplier on the
    pretrained part's learning rate, freezing (none, stem, all but the head), schedule, batch
    size, label smoothing and augmentation."""
    pretrained = context.pretrained
    if pretrained is None:
        raise UsageError("the finetune space needs --init-from CHECKPOINT (from search.train)")
    optimizer = suggest_optimizer(trial)
    body_lr_scale = trial.suggest_float("body_lr_scale", 0.01, 1.0, log=True)  # x the lr
    freeze = trial.suggest_categorical("freeze", list(FREEZING))
    return TrialConfig(
        model=pretrained.model,
        model_args=pretrained.model_args,
        image_size=pretrained.image_size,  # the input the network was trained at
        init_from=pretrained.path,
        tta=pretrained.tta,  # evaluated as it was designed to be
        tta_args=pretrained.tta_args,
        **optimizer,
        param_groups={"body": {"lr_scale": body_lr_scale}},
        freeze=FREEZING[freeze],
        **suggest_schedule(trial, context.epochs),
        batch_size=trial.suggest_categorical("batch_size", [16, 32, 64, 128, 256]),
        epochs=context.epochs,
        augment=suggest_augment(trial),
        label_smoothing=trial.suggest_float("label_smoothing", 0.0, 0.2),
        seed=context.trial_seed(trial),
        dataset=context.dataset,
        classes=list(context.classes),
    )


register_fine_tuning("finetune")

# Report 004 fine-tuned with its pre-training's recipe unchanged: SGD lr 1e-3, momentum 0.9,
# weight decay 1e-4, one-cycle, batch 128, the same heavy augmentation, nothing frozen.
register_warm_starts(
    "finetune",
    WarmStart(
        "report 004: the pre-training's recipe unchanged (SGD lr 1e-3, momentum 0.9, decay "
        "1e-4, one-cycle, batch 128, heavy augmentation, nothing frozen, a new 5-way head); "
        "89.55% on five STL-10 classes from a CIFAR-100 ConvNet",
        {
            **REPORT_004_AUGMENT, "optimizer": "sgd", "sgd_momentum": 0.9,
            "sgd_nesterov": False, "sgd_lr": 1e-3, "sgd_weight_decay": 1e-4,
            "body_lr_scale": 1.0, "freeze": "none", "schedule": "onecycle",
            "onecycle_pct_start": 0.3, "batch_size": 128, "label_smoothing": 0.0,
        },
    ),
)  # fmt: skip
