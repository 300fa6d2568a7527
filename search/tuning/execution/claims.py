"""Exactly N without a lock: which trials a worker may start. Workers stop starting trials
when finished plus running ones reach the target (or the epoch budget is trained); a trial
that still overshoots, or that two workers queued twice, fails untrained as not needed. Also
the callbacks that queue what runs next: a promoted paused trial's continuation, a
population's next generation."""

import logging
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.tuning.execution.endings import not_needed
from search.tuning.records import ledger
from search.tuning.strategies import continuation, pbt

log = logging.getLogger("search.worker")

# What a claim counts ahead of it: queued trials too, since one is always run (run_some_trials)
# and a fresh trial created beside a queued re-run must not take its place as well.
IN_FLIGHT_OR_FINISHED = (
    TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING,
)  # fmt: skip


class StopWhenEnoughInFlight:
    """Study callback: stop starting trials once finished plus running ones reach the target,
    or the trials have trained the epoch budget. Optuna's MaxTrialsCallback counts only
    finished trials, so N parallel workers overshoot by up to N-1 (optuna#3518)."""

    def __init__(self, target: int, epoch_budget: int = 0):
        self.target, self.epoch_budget = target, epoch_budget

    def __call__(self, running: optuna.Study, trial: FrozenTrial) -> None:
        if not has_room(running, self.target, self.epoch_budget):
            running.stop()


def has_room(running: optuna.Study, target: int, epoch_budget: int) -> bool:
    """Whether the study could use another trial: fewer than `target` finished or running,
    and epochs left in its budget."""
    trials = running.get_trials(deepcopy=False)
    counts = ledger.count_by_state(trials)
    in_flight = ledger.finished(counts) + counts[TrialState.RUNNING]
    return in_flight < target and not ledger.reached(trials, float("inf"), epoch_budget)


class Promoter:
    """Study callback in a study whose pruned trials pause (--pause-pruned): after each trial,
    queue a continuation of each paused trial that its rung now promotes and whose checkpoint
    is kept (`resumable`), while the study has room for it (continuation.promote)."""

    def __init__(self, resumable: Callable[[int], bool], target: int, epoch_budget: int):
        self.resumable, self.target, self.epoch_budget = resumable, target, epoch_budget

    def __call__(self, running: optuna.Study, trial: FrozenTrial | None = None) -> None:
        promoted = continuation.promote(
            running, self.resumable, lambda: has_room(running, self.target, self.epoch_budget)
        )
        for number in promoted:
            log.info("trial %d: its rung promotes it; queued to continue", number)


def claim_or_give_up(objective, target: int, population=None):
    """Workers that start trials at the same moment can still overshoot; trial numbers break
    the tie. A trial with `target` finished, running or queued trials numbered below it is not
    needed: it fails at once, untrained, with that reason, and its worker stops starting
    trials. In a population (pbt.Population), so is a fresh trial with the population's size
    of generation 0 ahead of it."""

    def claimed(trial: optuna.Trial) -> float:
        trials = trial.study.get_trials(deepcopy=False)
        taken = ledger.continued(trials)  # each counted as its continuation
        ahead = [t for t in trials if t.state in IN_FLIGHT_OR_FINISHED and t.number not in taken]
        limit = target
        if population is not None and pbt.generation_of(trial) is None:  # a fresh trial:
            ahead = [t for t in ahead if pbt.generation_of(t) in (0, None)]  # generation 0's
            limit = population.size
        if sum(other.number < trial.number for other in ahead) >= limit:
            trial.study.stop()
            not_needed(trial, f"not needed: {limit} earlier trials had finished or were under way")
        return objective(trial)

    return claimed


class PopulationSteward:
    """Study callback in a population (--scheduler pbt): after each trial, queue the next
    generation if the last is complete, and stop starting trials when none is queued and
    generation 0 is full (the worker then waits for the generation under way to end)."""

    def __init__(self, population):
        self.population = population

    def __call__(self, running: optuna.Study, trial: FrozenTrial) -> None:
        self.population.plan(running)
        if not self.population.has_work(running.get_trials(deepcopy=False)):
            running.stop()
