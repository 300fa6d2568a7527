"""Exactly N without a lock: which trials a worker starts. The study's scheduler says after
each trial whether a worker may start another (Steering: Optuna's optimize stops otherwise),
having queued what runs next; a trial that still overshoots (workers that start at the same
moment), or that two workers queued twice, fails at its start, untrained, as not needed."""

import optuna
from optuna.trial import FrozenTrial

from search.tuning.execution import endings
from search.tuning.strategies.scheduler import Next, Scheduler


class Steering:
    """Study callback: after each trial, the scheduler queues what runs next (a promoted
    paused trial's continuation, a population's next generation), and optimize stops unless a
    worker may start another trial. Optuna's MaxTrialsCallback counts only finished trials,
    so N parallel workers would overshoot by up to N-1 (optuna#3518)."""

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler

    def __call__(self, running: optuna.Study, trial: FrozenTrial | None = None) -> None:
        if self.scheduler.next(running) is not Next.START:
            running.stop()


def claim_or_give_up(objective, scheduler: Scheduler):
    """The objective, behind the scheduler's claim: a trial it finds not needed fails at once,
    untrained, with that reason, and its worker stops starting trials."""

    def claimed(trial: optuna.Trial) -> float:
        surplus = scheduler.claim(trial, trial.study.get_trials(deepcopy=False))
        if surplus:
            trial.study.stop()
            endings.not_needed(trial, surplus)
        return objective(trial)

    return claimed
