"""The Optuna objective: space -> TrialConfig -> trainer, reporting val accuracy per epoch,
checkpointing every epoch and resuming re-runs of failed trials."""

import os
import socket
import traceback
from collections.abc import Mapping, Sequence

import optuna
import torch

import spaces
from models.layers import count_parameters
from registry import UsageError, files
from search.training import config, device, evaluation
from search.training.config import TrialConfig
from search.training.data import Dataset
from search.training.trainer import (
    EpochResult,
    TrainingDiverged,
    TrainingState,
    TrainResult,
    train,
)
from search.tuning.execution import endings, recovery
from search.tuning.execution.checkpoints import TrialCheckpoints
from search.tuning.execution.endings import TrialFailed
from search.tuning.records import config_attrs, keys
from search.tuning.strategies import continuation, pareto_halving, pbt, transfer
from search.tuning.strategies.pareto_halving import ParetoHalving
from spaces import SpaceContext

INTERRUPTED = "interrupted (SIGTERM or Ctrl-C)"
# Enough of a traceback to see where it broke; large user attributes slow the dashboard.
TRACEBACK_CHARS = 4000


def is_out_of_memory(error: Exception) -> bool:
    """CUDA raises OutOfMemoryError; the CPU allocator a RuntimeError that says so."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def failure_reason(error: Exception, device_name: str) -> str:
    if is_out_of_memory(error):
        return f"out of memory on {device_name}"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:500]


# The objectives other than accuracy: properties of the network, measured by these
COSTS = {
    "params": lambda model, images, preprocess: float(count_parameters(model)),
    "latency": evaluation.latency_ms,
}


def measure(
    objectives: Sequence[str], result: TrainResult, val_images: torch.Tensor
) -> tuple[float, ...]:
    """The trial's value for each of the study's objectives (settings.OBJECTIVES)."""
    return tuple(
        result.final.val_accuracy
        if objective == "accuracy"
        else COSTS[objective](result.model, val_images, result.preprocess)
        for objective in objectives
    )


class Objective:
    """objective(trial): the space's config, trained, its values returned. The data moves to
    the device once here, not once per trial. With several objectives nothing is reported per
    epoch: Optuna prunes single-objective studies only. `compile_model`: every trial trains
    through torch.compile in that mode (search.run --compile MODE; "": not compiled). With
    `checkpoints`, a trial checkpoints every epoch and a re-run of a failed one resumes from
    its predecessors' last checkpoint, reporting their epochs to the pruner first, as the
    first run did; with `pause_pruned`, a trial its pruner stops is paused, its checkpoint
    kept for a continuation (continuation.py). `in_hand` is the number of the trial being
    run, for the worker to re-run it when it is cut off. Liveness is the storage's (its
    heartbeats, the proxy's too)."""

    def __init__(
        self,
        space_name: str,
        context: SpaceContext,
        dataset: Dataset,
        on_device: torch.device,
        objectives: Sequence[str] = ("accuracy",),
        compile_model: str = "",
        checkpoints: TrialCheckpoints | None = None,
        pause_pruned: bool = False,
        halving: ParetoHalving | None = None,
        search_box: Mapping[str, Mapping] | None = None,
        population: pbt.Population | None = None,
    ):
        self.space_name = space_name
        # --warm-start-from's box, where the study has one: the space suggests inside it
        self.space = transfer.within_box(spaces.get(space_name), search_box or {})
        self.context, self.objectives = context, tuple(objectives)
        self.train_set, self.val_set = dataset.train.to(on_device), dataset.val.to(on_device)
        self.num_classes, self.on_device = dataset.num_classes, on_device
        self.compile_model, self.checkpoints = compile_model, checkpoints
        self.pause_pruned, self.halving, self.population = pause_pruned, halving, population
        self.device_name = device.describe(on_device)
        # Which process runs a trial, for search.status; the GPU as CUDA_VISIBLE_DEVICES pinned.
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}" + (f" gpu {gpu}" if gpu else "")
        self.in_hand: int | None = None

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        return recovery.in_hand(self, trial, lambda: self.run(trial))

    def born(self, trial: optuna.Trial) -> TrialConfig:
        """The space's config for this trial, checked as it is born: before anything is
        recorded or trained, a value the space got wrong (a user's --space-module, say) fails
        the trial with one line that names the space, the trial and the field."""
        source = f"trial {trial.number}: space '{self.space_name}'"
        try:
            return config.validate(self.space(trial, self.context), source=source)
        except UsageError as error:
            trial.set_user_attr(keys.FAIL_REASON, str(error))
            raise TrialFailed(str(error)) from None

    def run(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        trial_config = self.born(trial)
        stop_after = None  # the epoch a population's segment stops after
        if self.population is not None:  # --scheduler pbt: a segment of a member's run
            trial_config = pbt.start_segment(trial, trial_config)
            if isinstance(trial_config, str):
                endings.not_needed(trial, trial_config)
            stop_after = pbt.stop_after(trial, self.population)
        elif spaces.CONTINUES in trial.user_attrs:  # it continues a paused trial
            surplus = continuation.take_over(trial)
            if surplus:
                endings.not_needed(trial, surplus)
        config_attrs.record(trial, trial_config)
        trial.set_user_attr(keys.DEVICE, self.device_name)
        trial.set_user_attr(keys.WORKER, self.worker_name)
        single = len(self.objectives) == 1
        resume_from = self.resume(trial, trial_config, report_epochs=single)
        curve = [epoch["val_accuracy"] for epoch in resume_from["history"]] if resume_from else []

        def report(epoch: EpochResult) -> bool:
            trial.report(epoch.val_accuracy, epoch.epoch)
            return trial.should_prune() or epoch.epoch == stop_after

        def record(epoch: EpochResult) -> bool:  # several objectives: Optuna's report
            curve.append(epoch.val_accuracy)  # refuses them (pareto_halving.py)
            trial.set_user_attr(keys.CURVE, curve)
            return bool(self.halving) and self.halving.should_stop(
                trial.study, trial.number, len(curve)
            )

        def measure_costs(state: TrainingState) -> None:  # what the halving ranks them by
            for name in self.objectives[1:]:
                trial.set_user_attr(
                    pareto_halving.COST_ATTRS[name],
                    COSTS[name](state.model, self.val_set.images, state.preprocess),
                )

        def save(state: dict) -> None:
            self.checkpoints.save(trial.number, state)

        try:
            result = train(
                trial_config, self.train_set, self.val_set, self.num_classes, self.on_device,
                report if single else record,
                compile_model=self.compile_model, resume_from=resume_from,
                on_checkpoint=save if self.checkpoints else None,
                on_start=measure_costs if self.halving else None,
            )  # fmt: skip
            values = measure(self.objectives, result, self.val_set.images)
        except TrainingDiverged as error:
            trial.set_user_attr(keys.PRUNE_REASON, str(error))
            raise optuna.TrialPruned(str(error)) from None
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (worker_loop.py): Optuna fails it, the
            trial.set_user_attr(keys.FAIL_REASON, INTERRUPTED)  # worker re-runs it (retries.py)
            raise
        except files.OutOfSpace as error:  # the disk, not the trial: it is re-queued, and the
            trial.set_user_attr(keys.FAIL_REASON, f"cut off: {error}")  # worker stops (trial_loop)
            raise
        except endings.CUT_OFF:  # the storage, not the trial, failed: the worker re-runs it
            raise  # when it is back
        except endings.TAKEN_AWAY:  # someone else ended the trial: nothing more is written
            raise  # to it, and its checkpoint stays for the re-run they queue
        except Exception as error:  # noqa: BLE001  one trial's failure must not end the worker
            reason = failure_reason(error, self.device_name)
            trial.set_user_attr(keys.FAIL_REASON, reason)
            if not is_out_of_memory(error):
                trial.set_user_attr(keys.TRACEBACK, traceback.format_exc()[-TRACEBACK_CHARS:])
            if self.checkpoints:  # a final failure: nothing will resume it
                self.checkpoints.remove(trial.number)
            raise TrialFailed(reason) from None  # drop the frames: they hold GPU tensors
        trial.set_user_attr("param_count", result.param_count)
        trial.set_user_attr("seconds_per_epoch", round(result.seconds_per_epoch, 4))
        trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
        trial.set_user_attr("train_loss", result.final.train_loss)
        trial.set_user_attr(keys.EPOCHS_RUN, len(result.history))
        if self.compile_model:
            trial.set_user_attr("compile_seconds", round(result.compile_seconds, 2))
        if result.stopped_early and stop_after == result.final.epoch:
            reason = f"interval over after epoch {stop_after}: the population exploits"
            trial.set_user_attr(keys.PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)  # the next generation goes on from its checkpoint
        if result.stopped_early:
            stopped = "paused" if self.pause_pruned else "pruned"
            reason = (
                f"{stopped} after epoch {result.final.epoch} at "
                f"val_accuracy {result.final.val_accuracy:.4f}"
            )
            trial.set_user_attr(keys.PRUNE_REASON, reason)
            if self.pause_pruned:  # its checkpoint stays, for a continuation (continuation.py)
                trial.set_user_attr(keys.PAUSED, result.final.epoch)
            raise optuna.TrialPruned(reason)
        return values[0] if len(values) == 1 else values

    def resume(self, trial: optuna.Trial, trial_config, report_epochs: bool) -> dict | None:
        """The state a re-run continues from, its epochs reported as the first run had."""
        if self.checkpoints is None:
            return None
        state = self.checkpoints.latest(trial, trial_config)
        if state is None:
            return None
        trial.set_user_attr(keys.RESUMED_AFTER_EPOCH, state["epoch"])
        for epoch in state["history"] if report_epochs else ():
            trial.report(epoch["val_accuracy"], epoch["epoch"])
        return state


def free_memory(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A study callback: return the finished trial's cached GPU memory (optuna#1224, #4934)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
