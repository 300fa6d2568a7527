"""The retraining behind the final selection (seed_selection.py): each top trial's config with seeds
0..S-1, trained on the training split, scored on the validation split, and on the test set for
information."""

import dataclasses
from collections.abc import Callable

import optuna
import torch

from registry import UsageError
from search.training import evaluation, tta
from search.training.data import Dataset
from search.training.trainer import train
from search.tuning.results import seed_selection, selection


@dataclasses.dataclass(frozen=True)
class Run:
    trial: int
    seed: int
    val_accuracy: float
    test_accuracy: float


def retrain_top(
    found: optuna.Study,
    dataset: Dataset,
    on_device: torch.device,
    top: int,
    seeds: int,
    on_run: Callable[[Run], None] = lambda run: None,
) -> list[Run]:
    """top x seeds runs: every top trial's config with seeds 0..seeds-1, trained on the
    training split, scored on the validation split (and on the test set, for information)."""
    if top < 1 or seeds < 1:
        raise UsageError(f"--top and --seeds must be at least 1, not {top} and {seeds}")
    runs = []
    test_set = dataset.test.to(on_device)
    for trial in seed_selection.top_trials(found, top):
        trial_config, _ = selection.exported_config(found, trial)
        views_of = tta.build(trial_config.tta, trial_config.tta_args)
        for seed in range(seeds):
            result = train(
                trial_config.replace(seed=seed), dataset.train, dataset.val,
                dataset.num_classes, on_device,
            )  # fmt: skip
            test_accuracy, _ = evaluation.accuracy_and_loss(
                result.model, test_set, result.preprocess, views_of
            )
            runs.append(Run(trial.number, seed, result.final.val_accuracy, test_accuracy))
            on_run(runs[-1])
    return runs
