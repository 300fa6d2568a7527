"""The Optuna objective: space -> TrialConfig -> trainer, reporting val accuracy per epoch."""

from collections.abc import Callable

import optuna
import torch

from search import device
from search.data import Dataset
from search.train import EpochResult, TrainingDiverged, train
from spaces import SpaceContext


class TrialFailed(Exception):
    """The trial could not train (e.g. out of memory); it ends FAILED and the worker goes on."""


def make_objective(
    space: Callable[[optuna.Trial, SpaceContext], object],
    context: SpaceContext,
    dataset: Dataset,
    on_device: torch.device,
) -> Callable[[optuna.Trial], float]:
    """The data moves to the device once here, not once per trial."""
    train_set, val_set = dataset.train.to(on_device), dataset.val.to(on_device)
    device_name = device.describe(on_device)

    def objective(trial: optuna.Trial) -> float:
        trial_config = space(trial, context)
        trial.set_user_attr("config", trial_config.to_dict())
        trial.set_user_attr("device", device_name)

        def report(epoch: EpochResult) -> bool:
            trial.report(epoch.eval_accuracy, epoch.epoch)
            return trial.should_prune()

        try:
            result = train(
                trial_config, train_set, val_set, dataset.num_classes, on_device, on_epoch=report
            )
        except TrainingDiverged as error:
            trial.set_user_attr("prune_reason", str(error))
            raise optuna.TrialPruned(str(error)) from None
        except torch.OutOfMemoryError:
            trial.set_user_attr("fail_reason", f"out of memory on {device_name}")
            raise TrialFailed(f"out of memory on {device_name}") from None
        trial.set_user_attr("param_count", result.param_count)
        trial.set_user_attr("seconds_per_epoch", round(result.seconds_per_epoch, 4))
        trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
        trial.set_user_attr("train_loss", result.final.train_loss)
        trial.set_user_attr("epochs_run", len(result.history))
        if result.stopped_early:
            reason = (
                f"pruned after epoch {result.final.epoch} at "
                f"val_accuracy {result.final.eval_accuracy:.4f}"
            )
            trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)
        return result.final.eval_accuracy

    return objective


def free_memory(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A study callback: return the finished trial's cached GPU memory (optuna#1224, #4934)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
