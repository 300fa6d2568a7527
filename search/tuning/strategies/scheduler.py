"""The strategy interface that the execution loop drives, and that a loop with another clock and
another source of learning curves (a replay) can drive too: what a worker may do next, which
trials a new one counts behind (exactly N), what a trial trains when it starts, what each
epoch's result decides, how a trial that stopped early ends, and which checkpoints the
strategy needs kept. It follows Ray Tune's TrialScheduler (on_trial_result -> CONTINUE, PAUSE
or STOP; choose_trial_to_run) and Syne Tune's scheduler (suggest: a new trial or a paused one
resumed; on_trial_result); what to try is Optuna's sampler's, the per-epoch verdict the study's
pruner's or the scheduler's own.

Scheduler itself runs independent trials, each judged by the study's pruner after every epoch,
and with `pause` (--pause-pruned) pauses rather than stops them and continues those that their
rung later promotes (continuation.py). A multi-objective study's (pareto_halving.py) and a
population's (pbt.py) schedulers build on it."""

import dataclasses
import enum
import logging
from collections.abc import Callable, Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.tuning.records import keys, ledger
from search.tuning.strategies import continuation

log = logging.getLogger("search.worker")

# What a claim counts ahead of it: queued trials too, since one is always run (Optuna's ask pops
# it first) and a fresh trial created beside a queued re-run must not take its place as well.
# Why a trial still queued when the study reached its target is ended untrained
NOT_NEEDED_ONCE_DONE = "not needed: the study holds what it is run for"
IN_FLIGHT_OR_FINISHED = (
    TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING,
)  # fmt: skip


class Decision(enum.Enum):
    """What an epoch's result decides for its trial."""

    CONTINUE = "continue"
    STOP = "stop"  # for good (pruned)
    PAUSE = "pause"  # its checkpoint kept: it may be continued later


class Next(enum.Enum):
    """What a worker may do now."""

    START = "start"  # take a trial: a queued one first (Optuna's ask pops it), else a new one
    WAIT = "wait"  # nothing for now: a running trial may yet fail and need its re-run
    DONE = "done"  # the study holds what it is run for


class NotNeeded(Exception):
    """A trial that must not train: another does its work, or the study has enough. It fails
    at once, untrained, with this reason (execution/endings.py), and counts as no failure."""


@dataclasses.dataclass
class Scheduler:
    """Independent trials until `target` finished ones (or `epoch_budget` epochs trained),
    stopped by the study's pruner; paused instead with `pause`, continued when their rung
    promotes them and their checkpoint is `resumable`, the `keep_paused` most promising of
    them keeping their checkpoints; `judge` ranks a rung's trials for promotion (--thaw)."""

    target: int
    epoch_budget: int = 0
    pause: bool = False
    keep_paused: int = 0
    resumable: Callable[[int], bool] | None = None
    judge: continuation.Judge = dataclasses.field(
        default_factory=lambda: continuation.THAW_RULES[continuation.DEFAULT_THAW](0)
    )
    measures_costs_first = False  # whether the objective records a trial's costs before it trains

    def next(self, study: optuna.Study) -> Next:
        """Queue what runs next (the continuations that rungs now promote), then say what a
        worker may do."""
        trials = study.get_trials(deepcopy=False)
        if ledger.reached(trials, self.target, self.epoch_budget):
            if self.pause and not ledger.out_of_epochs(trials, self.epoch_budget):
                number = continuation.finish_one(study, trials, self.resumable, self.judge)
                if number is not None:
                    log.info("trial %d: every trial paused; continued to end the study with "
                             "a result", number)  # fmt: skip
                    return Next.START
            if any(t.state == TrialState.WAITING for t in trials):
                for number in ledger.drop_queued(study, NOT_NEEDED_ONCE_DONE):
                    log.info("trial %d: queued, and not needed: %s", number, NOT_NEEDED_ONCE_DONE)
            return Next.DONE
        if self.pause:
            promoted = continuation.promote(
                study, self.resumable, lambda: self.has_room(study), self.judge
            )
            for number in promoted:
                log.info("trial %d: its rung promotes it; queued to continue", number)
            if promoted:  # there was room for it: this worker takes it
                return Next.START
        counts = ledger.count_by_state(trials)
        if ledger.finished(counts) + counts[TrialState.RUNNING] >= self.target:
            # enough run elsewhere; a queued trial (a re-run) is taken all the same, and the
            # claim fails whichever of the two is surplus as not needed
            return Next.START if counts[TrialState.WAITING] else Next.WAIT
        return Next.START

    def has_room(self, study: optuna.Study) -> bool:
        """Whether the study could use another trial: fewer than the target finished or running,
        and epochs left in its budget."""
        trials = study.get_trials(deepcopy=False)
        counts = ledger.count_by_state(trials)
        in_flight = ledger.finished(counts) + counts[TrialState.RUNNING]
        return in_flight < self.target and not ledger.out_of_epochs(trials, self.epoch_budget)

    def claim(self, trial: optuna.Trial, trials: Sequence[FrozenTrial]) -> str | None:
        """Why `trial`, just started, is not needed (None: it is): `target` finished, running or
        queued trials are numbered before it. Workers that start trials at the same moment can
        overshoot the target; trial numbers break the tie."""
        return self._behind(trial, trials, self.target, lambda other: True)

    @staticmethod
    def _behind(
        trial: optuna.Trial, trials, limit: int, counted: Callable[[FrozenTrial], bool]
    ) -> str | None:
        taken = ledger.continued(trials)  # each counted as its continuation
        ahead = sum(
            other.number < trial.number and other.state in IN_FLIGHT_OR_FINISHED
            and other.number not in taken and counted(other)
            for other in trials
        )  # fmt: skip
        if ahead >= limit:
            return f"not needed: {limit} earlier trials had finished or were under way"
        return None

    def start(self, trial: optuna.Trial, born):
        """The config `trial` trains (the space's `born`), having taken over the paused trial it
        continues, if any; NotNeeded if another already continues it."""
        if keys.CONTINUES in trial.user_attrs:
            surplus = continuation.take_over(trial)
            if surplus:
                raise NotNeeded(surplus)
        return born

    def resumed(self, trial: optuna.Trial, curve: Sequence[float]) -> None:
        """A re-run or continuation resumes after `curve`'s epochs: reported again, as the first
        run reported them, so that the pruner judges it where its run stands."""
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)

    def on_epoch(self, trial: optuna.Trial, curve: Sequence[float]) -> Decision:
        """What the trial's curve (its validation accuracy after each epoch so far) decides."""
        trial.report(curve[-1], len(curve))
        if not trial.should_prune():
            return Decision.CONTINUE
        return Decision.PAUSE if self.pause else Decision.STOP

    def ended(self, trial: optuna.Trial, decision: Decision, curve: Sequence[float]) -> str:
        """A trial stopped early by `decision` after its curve's last epoch: its records, and
        why it stopped."""
        stopped = "paused" if decision is Decision.PAUSE else "pruned"
        if decision is Decision.PAUSE:  # its checkpoint stays, for a continuation
            trial.set_user_attr(keys.PAUSED, len(curve))
        return f"{stopped} after epoch {len(curve)} at val_accuracy {curve[-1]:.4f}"

    def keeps(self, trials: list[FrozenTrial], direction: StudyDirection) -> set[int]:
        """The finished trials whose checkpoints the strategy may yet resume: the most promising
        paused ones."""
        ranked = continuation.ranked(continuation.paused(trials), direction, self.judge)
        return {t.number for t in ranked[: self.keep_paused]}
