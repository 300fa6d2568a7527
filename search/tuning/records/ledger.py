"""A study's trials read as runs: which states count as finished, the counts (a paused trial
that a continuation took over counted once, as that continuation), the epochs trained, the
stop rule of `--trials N` and `--epoch-budget`, the best trials by the study's direction, and
failing a trial with its reason."""

from collections.abc import Iterable, Sequence

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.tuning.records import keys

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what --trials N counts
DONE = (*FINISHED, TrialState.FAIL)  # ended, for good or to be re-run


def continued(trials: Iterable[FrozenTrial]) -> set[int]:
    """The paused trials that a continuation has taken over (one that was not needed aside).
    A population's segments go on from their parents too, but take no one's place: every
    segment is a trial of its own."""
    return {
        trial.user_attrs[keys.CONTINUES][-1]
        for trial in trials
        if keys.CONTINUES in trial.user_attrs
        and not trial.user_attrs.get(keys.NOT_NEEDED)
        and keys.PBT not in trial.user_attrs
    }


def continuations_run(trials: Iterable[FrozenTrial]) -> set[int]:
    """The paused trials whose continuation started (took it over, keys.CONTINUED_FROM); one
    queued but never run, when the budget ran out first, is not among them."""
    return {
        trial.user_attrs[keys.CONTINUED_FROM]
        for trial in trials
        if keys.CONTINUED_FROM in trial.user_attrs and trial.state != TrialState.WAITING
    }


def count_by_state(trials: Sequence[FrozenTrial]) -> dict[TrialState, int]:
    """Trials by state, each run once: a paused trial that a continuation has taken over is
    counted as that continuation."""
    taken = continued(trials)
    counts = dict.fromkeys(TrialState, 0)
    for trial in trials:
        if trial.number not in taken:
            counts[trial.state] += 1
    return counts


def finished(counts: dict[TrialState, int]) -> int:
    """The finished runs among `counts` (count_by_state's): what --trials N counts."""
    return sum(counts[state] for state in FINISHED)


def epochs_reported(trial: FrozenTrial) -> int:
    """The epochs a trial reported: to Optuna, or, with several objectives (whose report
    Optuna refuses), in its curve (keys.CURVE)."""
    return len(trial.intermediate_values) or len(trial.user_attrs.get(keys.CURVE, ()))


def epochs_trained(trials: Iterable[FrozenTrial]) -> int:
    """The epochs the study's trials trained, each once: a re-run or a continuation reports
    the epochs it resumed after again, but trains only those after them."""
    return sum(
        epochs_reported(trial) - trial.user_attrs.get(keys.RESUMED_AFTER_EPOCH, 0)
        for trial in trials
    )


def reached(trials: Sequence[FrozenTrial], target: int, epoch_budget: int) -> bool:
    """Whether a study holds what it is run for: `target` finished trials, or its trials have
    trained `epoch_budget` epochs (0: no budget)."""
    return finished(count_by_state(trials)) >= target or out_of_epochs(trials, epoch_budget)


def out_of_epochs(trials: Iterable[FrozenTrial], epoch_budget: int) -> bool:
    """Whether the trials have trained `epoch_budget` epochs in all (0: no budget)."""
    return bool(epoch_budget) and epochs_trained(trials) >= epoch_budget


def best_first(trials: Iterable[FrozenTrial], direction: StudyDirection) -> list[FrozenTrial]:
    """The complete trials, best first by the first objective in `direction`; the earlier of
    equals first."""
    sign = -1 if direction == StudyDirection.MAXIMIZE else 1
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return sorted(complete, key=lambda t: (sign * t.values[0], t.number))


def best(study: optuna.Study) -> FrozenTrial | None:
    """The best trial of a single-objective study (None before one completes, and for a
    multi-objective study, which has a Pareto front instead)."""
    if len(study.directions) > 1:
        return None
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def metric_names(study: optuna.Study) -> list[str]:
    """The study's objectives by the names it records (value0, ... where it has none)."""
    return study.metric_names or [f"value{i}" for i in range(len(study.directions))]


def fail_with_reason(storage: BaseStorage, trial_id: int, reason: str, end: bool = True) -> bool:
    """Record why a trial failed and (if `end`) fail it, by its storage: for a trial this
    process does not hold as a live optuna.Trial (a dead worker's, a cut-off one). False if
    someone else had ended it first (a heartbeat verdict, another worker)."""
    try:
        storage.set_trial_user_attr(trial_id, keys.FAIL_REASON, reason)
        if end:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return True


def fail(running: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """fail_with_reason for a trial of `running` (Optuna's private _storage and _trial_id are
    touched here and in drop_queued alone)."""
    return fail_with_reason(running._storage, trial._trial_id, reason)


def drop_queued(found: optuna.Study, reason: str) -> list[int]:
    """End the study's queued (WAITING) trials, untrained, as not needed with `reason`: a
    re-run or a continuation queued before the study reached its target, which no worker will
    take once they all see it reached. Each is first taken as a worker's ask takes it (WAITING
    to RUNNING, atomic in the storage), so that one another worker has just taken is left to
    it. The numbers of those ended here."""
    storage = found._storage  # Optuna's private storage, touched here and in fail alone
    dropped = []
    for trial in found.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if not storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
            continue
        storage.set_trial_user_attr(trial._trial_id, keys.NOT_NEEDED, True)
        if fail_with_reason(storage, trial._trial_id, reason):
            dropped.append(trial.number)
    return dropped


def enqueue_once(found: optuna.Study, queued: list[tuple[dict, dict]]) -> int:
    """Queue each (params, user attributes) unless the study has run or queued those params
    already; how many were newly queued."""
    before = len(found.get_trials(deepcopy=False))
    for params, user_attrs in queued:
        found.enqueue_trial(params, user_attrs=user_attrs, skip_if_exists=True)
    return len(found.get_trials(deepcopy=False)) - before
