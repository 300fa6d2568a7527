"""The Optuna objective: space -> TrialConfig -> trainer, reporting val accuracy per epoch."""

import os
import socket
import traceback
from collections.abc import Callable, Sequence

import optuna
import sqlalchemy
import torch

from search.training import device, evaluation
from search.training.data import Dataset
from search.training.trainer import EpochResult, TrainingDiverged, TrainResult, train
from search.tuning import trial_config as trial_config_attrs
from spaces import SpaceContext

# Enough of a traceback to see where it broke; large user attributes slow the dashboard.
TRACEBACK_CHARS = 4000


class TrialFailed(Exception):
    """The trial could not train (out of memory, or a bug); it ends FAILED, the worker goes on."""


def is_out_of_memory(error: Exception) -> bool:
    """CUDA raises OutOfMemoryError; the CPU allocator a RuntimeError that says so."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def failure_reason(error: Exception, device_name: str) -> str:
    if is_out_of_memory(error):
        return f"out of memory on {device_name}"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:500]


def measure(
    objectives: Sequence[str], result: TrainResult, val_images: torch.Tensor
) -> tuple[float, ...]:
    """The trial's value for each of the study's objectives (study.py's OBJECTIVES)."""
    measures = {
        "accuracy": lambda: result.final.eval_accuracy,
        "params": lambda: float(result.param_count),
        "latency": lambda: evaluation.latency_ms(result.model, val_images, result.preprocess),
    }
    return tuple(measures[objective]() for objective in objectives)


def make_objective(
    space: Callable[[optuna.Trial, SpaceContext], object],
    context: SpaceContext,
    dataset: Dataset,
    on_device: torch.device,
    objectives: Sequence[str] = ("accuracy",),
    compile_model: bool = False,
) -> Callable[[optuna.Trial], float | tuple[float, ...]]:
    """The data moves to the device once here, not once per trial. With several objectives
    nothing is reported per epoch: Optuna prunes single-objective studies only.
    `compile_model`: every trial trains through torch.compile (search.run --compile)."""
    train_set, val_set = dataset.train.to(on_device), dataset.val.to(on_device)
    device_name = device.describe(on_device)
    # Which process runs a trial, for search.status; the GPU as CUDA_VISIBLE_DEVICES pinned it.
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    worker_name = f"{socket.gethostname()}:{os.getpid()}" + (f" gpu {gpu}" if gpu else "")

    def objective(trial: optuna.Trial) -> float:
        trial_config = space(trial, context)
        trial_config_attrs.record(trial, trial_config)
        trial.set_user_attr("device", device_name)
        trial.set_user_attr("worker", worker_name)

        def report(epoch: EpochResult) -> bool:
            trial.report(epoch.eval_accuracy, epoch.epoch)
            return trial.should_prune()

        on_epoch = report if len(objectives) == 1 else None

        try:
            result = train(
                trial_config, train_set, val_set, dataset.num_classes, on_device, on_epoch,
                compile_model=compile_model,
            )  # fmt: skip
            values = measure(objectives, result, val_set.images)
        except TrainingDiverged as error:
            trial.set_user_attr("prune_reason", str(error))
            raise optuna.TrialPruned(str(error)) from None
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (worker_loop.py): Optuna fails it
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C or SIGTERM)")
            raise
        except sqlalchemy.exc.SQLAlchemyError:
            raise  # the storage, not the trial, failed: the worker reconnects (worker_loop.py)
        except Exception as error:  # noqa: BLE001  one trial's failure must not end the worker
            reason = failure_reason(error, device_name)
            trial.set_user_attr("fail_reason", reason)
            if not is_out_of_memory(error):
                trial.set_user_attr("traceback", traceback.format_exc()[-TRACEBACK_CHARS:])
            raise TrialFailed(reason) from None  # drop the frames: they hold GPU tensors
        trial.set_user_attr("param_count", result.param_count)
        trial.set_user_attr("seconds_per_epoch", round(result.seconds_per_epoch, 4))
        trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
        trial.set_user_attr("train_loss", result.final.train_loss)
        trial.set_user_attr("epochs_run", len(result.history))
        if compile_model:
            trial.set_user_attr("compile_seconds", round(result.compile_seconds, 2))
        if result.stopped_early:
            reason = (
                f"pruned after epoch {result.final.epoch} at "
                f"val_accuracy {result.final.eval_accuracy:.4f}"
            )
            trial.set_user_attr("prune_reason", reason)
            raise optuna.TrialPruned(reason)
        return values[0] if len(values) == 1 else values

    return objective


def free_memory(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A study callback: return the finished trial's cached GPU memory (optuna#1224, #4934)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
