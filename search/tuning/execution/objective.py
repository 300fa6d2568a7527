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
from search.training.device import is_out_of_memory
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
from search.tuning.strategies import pareto_halving, strategy, transfer
from search.tuning.strategies.scheduler import Decision, NotNeeded, Scheduler
from spaces import SpaceContext

INTERRUPTED = "interrupted (SIGTERM or Ctrl-C)"
# Enough of a traceback to see where it broke; large user attributes slow the dashboard.
TRACEBACK_CHARS = 4000


def where(error: Exception) -> str:
    """' (FILE, line N)': the deepest frame of the error's traceback outside Optuna (whose
    suggest_* a space calls), which for a space's bug is the space's own line."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if f"{os.sep}optuna{os.sep}" not in f.filename]  # fmt: skip
    return f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""


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
    the device once here, not once per trial. What the study's strategy decides is its
    `scheduler`'s (strategies/scheduler.py): what a trial trains when it starts, what each
    epoch's result decides (go on, stop, pause), why it stopped; by default, as a single
    study.optimize would run it (strategy.standalone). `compile_model`: every trial trains
    through torch.compile in that mode (search.run --compile MODE; "": not compiled). With
    `checkpoints`, a trial checkpoints every epoch and a re-run of a failed one resumes from
    its predecessors' last checkpoint. `in_hand` is the number of the trial being run, for the
    worker to re-run it when it is cut off. Liveness is the storage's (its heartbeats, the
    proxy's too)."""

    def __init__(
        self,
        space_name: str,
        context: SpaceContext,
        dataset: Dataset,
        on_device: torch.device,
        objectives: Sequence[str] = ("accuracy",),
        compile_model: str = "",
        checkpoints: TrialCheckpoints | None = None,
        scheduler: Scheduler | None = None,
        search_box: Mapping[str, Mapping] | None = None,
    ):
        self.space_name = space_name
        # --warm-start-from's box, where the study has one: the space suggests inside it
        self.space = transfer.within_box(spaces.get(space_name), search_box or {})
        self.context, self.objectives = context, tuple(objectives)
        self.train_set, self.val_set = dataset.train.to(on_device), dataset.val.to(on_device)
        self.num_classes, self.on_device = dataset.num_classes, on_device
        self.compile_model, self.checkpoints = compile_model, checkpoints
        self.scheduler = scheduler or strategy.standalone(self.objectives)
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
        the trial with one line that names the space, the trial and the field, and so does a
        space that raises (a bug in it), with the error's first line and the space's own file
        and line; trials that keep failing stop the run (trial_loop.FailureGuard)."""
        source = f"trial {trial.number}: space '{self.space_name}'"
        try:
            return config.validate(self.space(trial, self.context), source=source)
        except UsageError as error:
            reason = str(error)
        except (*endings.CUT_OFF, *endings.TAKEN_AWAY):
            raise  # the storage failed while the space suggested: not the space's doing
        except Exception as error:  # noqa: BLE001  a user's space with a bug fails its trial
            reason = f"{source} raised {failure_reason(error, self.device_name)}{where(error)}"
        trial.set_user_attr(keys.FAIL_REASON, reason)
        raise TrialFailed(reason) from None

    def start(self, trial: optuna.Trial) -> TrialConfig:
        """The config the trial trains, as its strategy starts it (a continuation takes over its
        paused trial, a population's segment takes its changes), recorded with where it runs;
        a trial the strategy finds not needed ends here, untrained."""
        try:
            trial_config = self.scheduler.start(trial, self.born(trial))
        except NotNeeded as surplus:
            endings.not_needed(trial, str(surplus))
        config_attrs.record(trial, trial_config)
        trial.set_user_attr(keys.DEVICE, self.device_name)
        trial.set_user_attr(keys.WORKER, self.worker_name)
        return trial_config

    def run(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        trial_config = self.start(trial)
        resume_from = self.resume(trial, trial_config)
        curve = [epoch["val_accuracy"] for epoch in resume_from["history"]] if resume_from else []
        decided = [Decision.CONTINUE]

        def report(epoch: EpochResult) -> bool:
            curve.append(epoch.val_accuracy)
            decided[0] = self.scheduler.on_epoch(trial, curve)
            return decided[0] is not Decision.CONTINUE

        result, values = self.trained(trial, trial_config, resume_from, report)
        self.record(trial, result)
        if result.stopped_early:
            reason = self.scheduler.ended(trial, decided[0], curve)
            trial.set_user_attr(keys.PRUNE_REASON, reason)
            raise optuna.TrialPruned(reason)
        return values[0] if len(values) == 1 else values

    def trained(
        self, trial: optuna.Trial, trial_config: TrialConfig, resume_from, report
    ) -> tuple[TrainResult, tuple[float, ...]]:
        """The trial's training and its values, each way it can end but finishing or stopping
        early told apart: a diverged training is pruned; an interrupt, a full disk, a lost storage or a
        trial someone else ended are not the trial's fault and pass through (the worker
        re-runs or drops it); anything else fails the trial, and the worker goes on."""

        def measure_costs(state: TrainingState) -> None:  # what the strategy ranks them by
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
                report, compile_model=self.compile_model, resume_from=resume_from,
                on_checkpoint=save if self.checkpoints else None,
                on_start=measure_costs if self.scheduler.measures_costs_first else None,
            )  # fmt: skip
            return result, measure(self.objectives, result, self.val_set.images)
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

    def record(self, trial: optuna.Trial, result: TrainResult) -> None:
        """What the trial's training measured, beside its values."""
        trial.set_user_attr("param_count", result.param_count)
        trial.set_user_attr("seconds_per_epoch", round(result.seconds_per_epoch, 4))
        trial.set_user_attr("images_per_second", round(result.images_per_second, 1))
        trial.set_user_attr("train_loss", result.final.train_loss)
        trial.set_user_attr(keys.EPOCHS_RUN, len(result.history))
        if self.compile_model:
            trial.set_user_attr("compile_seconds", round(result.compile_seconds, 2))

    def resume(self, trial: optuna.Trial, trial_config: TrialConfig) -> dict | None:
        """The state a re-run continues from, its epochs told to the strategy as the first run
        told them."""
        if self.checkpoints is None:
            return None
        state = self.checkpoints.latest(trial, trial_config)
        if state is None:
            return None
        trial.set_user_attr(keys.RESUMED_AFTER_EPOCH, state["epoch"])
        self.scheduler.resumed(trial, [epoch["val_accuracy"] for epoch in state["history"]])
        return state


def free_memory(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A study callback: return the finished trial's cached GPU memory (optuna#1224, #4934)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
