"""Pause, don't kill (search.run --pause-pruned): a trial that successive halving stops at a
rung keeps its checkpoint, and when later results put it in its rung's top 1/eta it is
continued from there, not retrained. Optuna's pruners stop for good (it keeps no checkpoints:
optuna#3351); the ASHA paper's algorithm and Syne Tune's promotion-type scheduler promote
paused trials, and this follows them on Optuna's pruners.

A PRUNED trial is final in Optuna, so a continuation is a new trial: the paused one's
parameters, its seed and its lineage (keys.CONTINUES), queued (WAITING) so that the next
free worker takes it first. It resumes from the paused trial's checkpoint as a re-run of a
failed trial does, re-reporting the earlier epochs (its curve is the whole run), and carries
the paused trial's rung values, so that the pruner judges it at the next rung. It takes the
paused trial's place: that one no longer counts among the study's finished trials (`--trials
N` counts runs, a paused and continued one once), nor competes at its rungs, nor costs epochs
twice (a continuation's budget is the epochs it trains itself).

Which paused trials a rung promotes is ranked by a thaw rule (--thaw, THAW_RULES): the value
each trial had at the rung, as ASHA ranks; or, freeze-thaw's way (Swersky et al. 2014; DyHPO,
ifBO), where each trial's curve up to the rung extrapolates to at the last epoch, so that a
curve still climbing steeply is thawed before a flat one that stands a little higher."""

import types
from collections.abc import Callable, Sequence

import numpy as np
import optuna
from optuna.pruners import HyperbandPruner, SuccessiveHalvingPruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import spaces
from registry import Registry
from search.tuning.records import keys, ledger
from search.tuning.strategies import extrapolation

RUNG = "completed_rung_"  # Optuna's SuccessiveHalvingPruner's system attributes, one a rung
# How promising a trial is at a rung (larger: more), given the trial, the rung's number, the
# rung's epoch and the study's direction
Judge = Callable[[FrozenTrial, int, int, StudyDirection], float]
# --thaw NAME -> the judge of a study of that many epochs
THAW_RULES: Registry = Registry("thaw rule", supplied=("epochs",))
DEFAULT_THAW = "rung"


def value_at_rung(trial: FrozenTrial, rung: int, direction: StudyDirection) -> float:
    """The value the trial reported at the rung, larger the better in either direction."""
    sign = 1 if direction == StudyDirection.MAXIMIZE else -1
    return sign * trial.system_attrs.get(f"{RUNG}{rung}", float("-inf"))


def forecast_from_rung(
    trial: FrozenTrial, rung: int, epoch: int, direction: StudyDirection, epochs: int
) -> float:
    """The value at epoch `epochs` that the trial's curve up to `epoch` extrapolates to
    (extrapolation.forecast's mean), larger the better; the rung value where too few epochs
    lie before the rung to fit a curve, -inf for a curve that diverged on the way."""
    seen = sorted(s for s in trial.intermediate_values if s <= epoch)
    if len(seen) < extrapolation.MIN_EPOCHS:
        return value_at_rung(trial, rung, direction)
    sign = 1 if direction == StudyDirection.MAXIMIZE else -1
    curve = sign * np.array([trial.intermediate_values[s] for s in seen], dtype=float)
    if not np.isfinite(curve).all():
        return float("-inf")
    return extrapolation.forecast(np.array(seen), curve, epochs).mean


class Forecasts:
    """forecast_from_rung as a Judge, each forecast made once: a trial's curve up to a rung it
    reached no longer changes, and promotion asks about every rival of every paused trial
    whenever a worker is free."""

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.made: dict[tuple[int, int, StudyDirection], float] = {}

    def __call__(self, trial: FrozenTrial, rung: int, epoch: int, direction) -> float:
        key = (trial._trial_id, epoch, direction)
        if key in self.made:
            return self.made[key]
        judged = forecast_from_rung(trial, rung, epoch, direction, self.epochs)
        # kept once the curve holds the rung's epoch: a continuation carries its rung values
        # before it has re-reported the epochs that lead to them
        if epoch in trial.intermediate_values:
            self.made[key] = judged
        return judged


# The registered rules only name what the functions above do (mutmut 3.8 does not mutate a
# decorated function, so the rules' logic lives outside them, where a mutation run reaches it)
@THAW_RULES.register("rung")
def by_rung_value(epochs: int) -> Judge:
    """The value the trial reported at the rung, as ASHA and Optuna's pruners rank."""
    return lambda trial, rung, epoch, direction: value_at_rung(trial, rung, direction)


@THAW_RULES.register("forecast")
def by_forecast(epochs: int) -> Judge:
    """Where the trial's curve up to the rung's epoch extrapolates to at the last epoch
    (forecast_from_rung). A trial that went on past the rung is judged on what it showed
    there, as the paused one is."""
    return Forecasts(epochs)


def described(trial: FrozenTrial) -> str:
    """' (continues trial P, paused after epoch E)' for a continuation, else ''."""
    if keys.CONTINUED_FROM not in trial.user_attrs:
        return ""
    after = trial.user_attrs.get(keys.RESUMED_AFTER_EPOCH)
    paused_at = f", paused after epoch {after}" if after is not None else ""
    return f" (continues trial {trial.user_attrs[keys.CONTINUED_FROM]}{paused_at})"


def rung_of(trial: FrozenTrial) -> int:
    """The last rung the trial reached (-1: none)."""
    rung = -1
    while f"{RUNG}{rung + 1}" in trial.system_attrs:
        rung += 1
    return rung


def paused(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Paused trials that no continuation has taken over yet."""
    taken = ledger.continued(trials)
    return [t for t in trials if keys.PAUSED in t.user_attrs and t.number not in taken]


def ranked(trials: list[FrozenTrial], direction: StudyDirection, judge: Judge) -> list[FrozenTrial]:
    """Paused trials, the most promising first: the highest rung, then the best judged there
    (a paused trial stopped at its rung's epoch)."""

    def key(trial: FrozenTrial) -> tuple[int, float]:
        rung = rung_of(trial)
        return rung, judge(trial, rung, trial.user_attrs[keys.PAUSED], direction)

    return sorted(trials, key=key, reverse=True)


class _WithoutTakenOver:
    """A study as a pruner compares its trials: without the paused trials that continuations
    have taken over (each continuation carries its parent's rung values)."""

    def __init__(self, study: optuna.Study, taken: set[int]):
        self._study, self._taken = study, taken

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [trial for trial in trials if trial.number not in self._taken]

    def __getattr__(self, name: str):
        return getattr(self._study, name)


class Promoting:
    """What a successive-halving pruner of ours adds to Optuna's: its view of the study leaves
    out the trials that continuations took over, a trial is judged where its lineage began
    (Hyperband's bracket), and `promotable` lists the paused trials that now rank in their
    rung's top 1/eta."""

    _reduction_factor: int

    def bracket(self, study: optuna.Study, trial: FrozenTrial) -> int:
        return 0

    def promotable(
        self, study: optuna.Study, trials: list[FrozenTrial], judge: Judge
    ) -> list[FrozenTrial]:
        """Paused trials that `judge` now ranks, at the rung they paused at, within the top
        len(rung) // eta of the trials that reached that rung in their bracket (at least eta
        of them: the first few are judged as Optuna's pruner judged them), best first."""
        taken = ledger.continued(trials)
        direction = study.direction
        # Each rung's cut is made once for all the trials paused there (a study holds
        # hundreds of paused trials under ASHA's eta 4, and each cut reads every trial)
        cuts: dict[tuple[int, int, int], float | None] = {}
        found = []
        for trial in paused(trials):
            rung = rung_of(trial)
            if rung < 0:
                continue
            epoch = trial.user_attrs[keys.PAUSED]  # it paused at this rung's epoch
            group = (rung, self.bracket(study, trial), epoch)
            if group not in cuts:
                cuts[group] = self._cut(study, trials, taken, judge, *group)
            cut = cuts[group]
            if cut is not None and judge(trial, rung, epoch, direction) >= cut:
                found.append(trial)
        return ranked(found, direction, judge)

    def _cut(
        self, study: optuna.Study, trials: list[FrozenTrial], taken: set[int], judge: Judge,
        rung: int, bracket: int, epoch: int,
    ) -> float | None:  # fmt: skip
        """The judged value that the top len // eta of the trials that reached `rung` (at
        `epoch`) in `bracket` reach; None where fewer than eta reached it."""
        key = f"{RUNG}{rung}"
        values = sorted((
            judge(other, rung, epoch, study.direction)
            for other in trials
            if key in other.system_attrs
            and other.number not in taken
            and self.bracket(study, other) == bracket
        ), reverse=True)  # fmt: skip
        top = len(values) // self._reduction_factor
        return values[top - 1] if top >= 1 else None


class PausingSuccessiveHalving(Promoting, SuccessiveHalvingPruner):
    """Optuna's SuccessiveHalvingPruner (Ray Tune's ASHA, stopping type), comparing the trials
    that carry a run on, and listing the paused ones to promote."""

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        taken = ledger.continued(study.get_trials(deepcopy=False))
        return super().prune(_WithoutTakenOver(study, taken), trial)


class HybridSuccessiveHalving(PausingSuccessiveHalving):
    """Successive halving of the promotion type at the first `always` rungs, and at every rung
    once the study has a finished trial; of the stopping type at the higher rungs until then.
    A rung of the promotion type holds its first eta - 1 arrivals paused until eta have reached
    it (the ASHA paper's Algorithm 2); one of the stopping type lets a trial go on while it is
    the best there so far (Optuna's, Ray Tune's ASHA). Waiting at every rung selects deeply
    before anything is trained to the end, so a study has no finished trial for a long while
    (with eta 3 and 4 workers on 50 epochs, a quarter of a 20-trial budget); waiting at the
    cheap rungs alone first gives it one soon, a trial selected among a few."""

    _finished = False  # the study has a finished trial (a study never loses one)

    def __init__(self, *, reduction_factor: int, always: int) -> None:
        super().__init__(min_resource=1, reduction_factor=reduction_factor)
        self._always = always

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        arriving = rung_of(trial) + 1  # the rung this report may reach (one a report: a
        # continuation carries its parent's rung values)
        if arriving >= self._always and not self._finished:
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._finished = bool(done)
        waits = arriving < self._always or self._finished
        # Optuna's pruner stops a trial while its rung holds bootstrap_count trials or fewer,
        # itself counted
        self._bootstrap_count = self._reduction_factor - 1 if waits else 0
        return super().prune(study, trial)


class PausingHyperband(Promoting, HyperbandPruner):
    """Optuna's HyperbandPruner, its bracket chosen by where a trial's lineage began (a
    continuation or a re-run competes where its origin did), leaving out the trials that
    continuations took over, and listing the paused ones to promote."""

    _taken: set[int] = frozenset()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        self._taken = ledger.continued(study.get_trials(deepcopy=False))
        return super().prune(study, trial)

    def _get_bracket_id(self, study: optuna.Study, trial: FrozenTrial) -> int:
        if trial.number in self._taken:
            return -1  # in no bracket: its continuation competes for it
        origin = (spaces.lineage(trial) or [trial.number])[0]
        return super()._get_bracket_id(study, types.SimpleNamespace(number=origin))

    def bracket(self, study: optuna.Study, trial: FrozenTrial) -> int:
        if not self._pruners:
            self._try_initialization(study)
        return self._get_bracket_id(study, trial)

    def promotable(
        self, study: optuna.Study, trials: list[FrozenTrial], judge: Judge
    ) -> list[FrozenTrial]:
        self._taken = ledger.continued(trials)
        return super().promotable(study, trials, judge)


def promote(
    study: optuna.Study,
    resumable: Callable[[int], bool],
    room: Callable[[], bool],
    judge: Judge,
) -> list[int]:
    """Queue a continuation of every paused trial that its rung now promotes, as `judge` ranks
    the rung, and that can resume (`resumable(number)`: its checkpoint is kept), the most
    promising first, while the study has `room()` for another trial; the numbers of the
    trials continued."""
    pruner = study.pruner
    if not isinstance(pruner, Promoting):
        return []
    trials = study.get_trials(deepcopy=False)
    queued = []
    for trial in pruner.promotable(study, trials, judge):
        if not resumable(trial.number) or not room():
            continue
        queue_continuation(study, trial)
        queued.append(trial.number)
    return queued


def finish_one(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    resumable: Callable[[int], bool],
    judge: Judge,
) -> int | None:
    """At a study's end (`trials`, as the scheduler just read them) with no finished trial,
    nothing running and nothing queued (every run paused, as a pruner that holds a rung's
    first trials leaves a study of a few trials): queue a continuation of its most promising
    paused trial that can resume, whatever its rung's cut, so that the study ends with a
    result (it takes that trial's place in --trials); the number continued, None where there
    is no need or none can resume."""
    if any(t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
           for t in trials):  # fmt: skip
        return None
    for trial in ranked(paused(trials), study.direction, judge):
        if resumable(trial.number):
            queue_continuation(study, trial)
            return trial.number
    return None


def queue_continuation(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue the paused `trial`'s continuation (its parameters and lineage, keys.CONTINUES):
    the next free worker takes it first."""
    study.enqueue_trial(
        trial.params,
        user_attrs={keys.CONTINUES: [*spaces.lineage(trial), trial.number]},
        skip_if_exists=False,
    )


def take_over(trial: optuna.Trial) -> str | None:
    """At a continuation's start: carry the paused trial's rung values (its pruner's record of
    the rungs it passed) and say what it continues. A reason if another trial numbered before
    it already continues the same one (two workers promoted it at once): this one is not
    needed."""
    parent_number = trial.user_attrs[keys.CONTINUES][-1]
    trials = trial.study.get_trials(deepcopy=False)
    rivals = [
        other.number
        for other in trials
        if other.number < trial.number
        and other.user_attrs.get(keys.CONTINUES, [None])[-1] == parent_number
        and not other.user_attrs.get(keys.NOT_NEEDED)
        and other.state != TrialState.FAIL
    ]
    if rivals:
        return f"not needed: trial {rivals[0]} already continues trial {parent_number}"
    parent = trials[parent_number]
    for key, value in parent.system_attrs.items():
        if key.startswith(RUNG):
            trial.study._storage.set_trial_system_attr(trial._trial_id, key, value)
    trial.set_user_attr(keys.CONTINUED_FROM, parent_number)
    note_lineage(trial, parent)
    return None


def note_lineage(trial: optuna.Trial, parent: FrozenTrial) -> None:
    """optuna-dashboard's notes on both trials, so that its trial list reads as one run: the
    continuation's curve is the whole run, and the paused trial points to it."""
    import optuna_dashboard  # here: search.dashboard reports a broken install in one line

    after = parent.user_attrs.get(keys.PAUSED)
    optuna_dashboard.save_note(trial, (
        f"## Continues trial {parent.number}\n\nPaused there after epoch {after} and continued "
        "here from its checkpoint: this trial's learning curve is the whole run."
    ))  # fmt: skip
    # save_note takes a live Trial; the paused one is finished, so it is opened on a study
    # whose sampler (random) does nothing when a Trial is made, where a live study's sampler
    # may write to the trial it is given
    quiet = optuna.load_study(
        study_name=trial.study.study_name, storage=trial.storage,
        sampler=optuna.samplers.RandomSampler(),
    )  # fmt: skip
    optuna_dashboard.save_note(optuna.Trial(quiet, parent._trial_id), (
        f"## Paused after epoch {after}, continued as trial {trial.number}\n\nTrial "
        f"{trial.number} carries this run on from its checkpoint: its learning curve is the "
        "whole run."
    ))  # fmt: skip
