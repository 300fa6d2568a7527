"""What a person sees while trials run: a line per finished trial and a live bar (TrialPrinter),
fed by the worker's own loop, or by a parent whose workers are other processes
(StudyWatcher)."""

import sys

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from search.tuning.records import clock, keys, ledger
from search.tuning.store import faults
from search.tuning.strategies import continuation


def format_values(names: list[str], values: list[float]) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in zip(names, values, strict=True))


def describe_best(study: optuna.Study) -> str:
    """'best val_accuracy 0.91 (trial 7)', or the Pareto front's size for several objectives."""
    if len(study.directions) > 1:
        front = study.best_trials
        return f"Pareto front: {len(front)} trial(s)" if front else "no Pareto front yet"
    best = ledger.best(study)
    return f"best val_accuracy {best.value:.4f} (trial {best.number})" if best else "no best yet"


def output_mode(quiet: bool) -> str:
    """quiet: nothing per trial; live: a progress bar with a line per trial, on a terminal;
    lines: plain lines (logs, pipes, CI)."""
    if quiet:
        return "quiet"
    return "live" if sys.stdout.isatty() else "lines"


class TrialPrinter:
    """Study callback: a line per finished trial (state, value, epochs, time, best so far);
    in live mode also a tqdm bar with the pruned and failed counts and the ETA."""

    def __init__(self, target: int, finished_before: int, mode: str):
        self.target = target
        self.mode = mode
        self.bar = (
            tqdm(total=target, initial=finished_before, unit="trial", dynamic_ncols=True)
            if mode == "live"
            else None
        )

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.mode == "quiet":
            return
        counts = ledger.count_by_state(study.get_trials(deepcopy=False))
        finished = ledger.finished(counts)
        # A multi-objective trial reports no epochs to Optuna; the objective records them.
        epochs = trial.last_step or trial.user_attrs.get(keys.EPOCHS_RUN, 0)
        if trial.values is not None:
            shown = format_values(ledger.metric_names(study), trial.values)
        elif epochs in trial.intermediate_values:
            shown = f"val_accuracy {trial.intermediate_values[epochs]:.4f}"
        else:
            shown = "no value"
        seconds = clock.seconds(trial) or 0.0
        best_text = describe_best(study)
        reason = trial.user_attrs.get(keys.FAIL_REASON, "")
        plural = "s" if epochs != 1 else ""
        state = "PAUSED" if keys.PAUSED in trial.user_attrs else trial.state.name
        line = (
            f"[{finished}/{self.target}] trial {trial.number}{continuation.described(trial)} "
            f"{state:<8} {shown}  "
            f"{epochs} epoch{plural}  {seconds:.1f} s  | {best_text}  {reason}"
        ).rstrip()
        if self.bar is None:
            print(line, flush=True)
            return
        self.bar.write(line)
        self.bar.n = min(finished, self.target)
        self.bar.set_postfix_str(
            f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed, {best_text}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class StudyWatcher:
    """For a parent whose workers are other processes: feeds every trial that finished since
    the last look to a TrialPrinter, as the workers' own callbacks would have."""

    def __init__(self, study: optuna.Study, printer: TrialPrinter):
        self.study = study
        self.printer = printer
        self.seen = {t.number for t in study.get_trials(deepcopy=False, states=ledger.DONE)}

    def __call__(self) -> None:
        try:
            for trial in self.study.get_trials(deepcopy=False, states=ledger.DONE):
                if trial.number not in self.seen:
                    self.printer(self.study, trial)  # it reads the study too
                    self.seen.add(trial.number)
        except Exception as error:
            if faults.outage(error) is None:
                raise
            # the storage is away (the database restarting, the proxy down: seen at 150 s);
            # the workers ride it out, and the next look catches up
