"""Model-based multi-fidelity search (--sampler mf-tpe): TPE fitted at one budget, BOHB's rule
(Falkner, Klein and Hutter, ICML 2018): the highest epoch that enough trials have reached,
every trial there ranked by its value at that epoch. With a rung-based pruner, Optuna's TPE
ranks finished trials first and pruned ones by how far they got, then by their last value: a
configuration pruned at epoch 4 by a rung full of epoch-16 values counts among the worst
whatever its promise, and early-rung values mislead it (TPE with ASHA lost to random search
with ASHA on LCBench's curves, BENCHMARKS.md). Here every trial the model sees is compared at
the same epoch, as BOHB's per-budget models do.

It is Optuna's own TPESampler, shown a view of the study in which each trial that reached the
chosen epoch is a finished trial of its value there, those that did not are left out, and
running ones stay running (for the constant liar). Until enough trials have reached epoch
MIN_EPOCH (or the study's last, if it has fewer), it samples at random: on LCBench's
development tasks a model of the first epoch's values steered the search too early (below).
BOHB also samples a share of its configurations at random (`random_fraction`).

Measured in the replay (search.bench --sections replay, 8 development tasks x 30 seeds, 4
workers, with successive halving at eta 3), normalized regret at 25/50/100% of the budget:
random fraction 1/3 (BOHB's) .424/.196/.102, 0 .428/.196/.079, 1/2 .415/.190/.082; with 1/2
and the model from epoch 3 on .405/.173/.087, from epoch 9 .398/.188/.085; random search
with the same pruner .398/.197/.125 (BENCHMARKS.md)."""

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

MIN_TRIALS = 10  # at one epoch before TPE models it: TPE's own n_startup_trials
MIN_EPOCH = 3  # the lowest epoch it models (the second rung at eta 3)
DEFAULT_RANDOM_FRACTION = 0.5  # measured above; BOHB's is 1/3


class _AtEpoch:
    """The study as TPE reads it (`_get_trials`), every trial judged at one epoch; all else is
    the study's own (its direction, its storage, where the constant liar writes)."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]):
        self._study, self._trials = study, trials

    def _get_trials(self, deepcopy=False, states=None, use_cache=False) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def get_trials(self, deepcopy=False, states=None) -> list[FrozenTrial]:
        return self._get_trials(states=states)

    def __getattr__(self, name: str):
        return getattr(self._study, name)


def highest_epoch(trials: list[FrozenTrial], enough: int, lowest: int = 1) -> int | None:
    """The highest epoch that at least `enough` trials reported, if it is `lowest` or above
    or the last any trial reported (None: no such epoch)."""
    reached = sorted(
        (max(t.intermediate_values) for t in trials if t.intermediate_values), reverse=True
    )
    if len(reached) < enough:
        return None
    epoch = reached[enough - 1]
    return epoch if epoch >= min(lowest, reached[0]) else None


def at_epoch(trials: list[FrozenTrial], epoch: int) -> list[FrozenTrial]:
    """The trials as finished at `epoch`: each that reported it, valued there; the running
    ones that did not yet, still running."""
    seen = []
    for trial in trials:
        value = trial.intermediate_values.get(epoch)
        if value is not None and np.isfinite(value):
            seen.append(optuna.trial.FrozenTrial(
                number=trial.number, state=TrialState.COMPLETE, value=value,
                datetime_start=trial.datetime_start, datetime_complete=trial.datetime_complete,
                params=trial.params, distributions=trial.distributions, user_attrs={},
                system_attrs={}, intermediate_values={}, trial_id=trial._trial_id,
            ))  # fmt: skip
        elif trial.state == TrialState.RUNNING:
            seen.append(trial)
    return seen


class MultiFidelityTPE(BaseSampler):
    """TPE (as --sampler tpe builds it) fitted at the highest epoch with `MIN_TRIALS` trials
    (from MIN_EPOCH on), a `random_fraction` of trials sampled at random."""

    def __init__(self, tpe: TPESampler, seed: int | None, random_fraction: float):
        self._tpe, self._random = tpe, RandomSampler(seed=seed)
        self._rng = np.random.default_rng(seed)
        self._random_fraction = random_fraction
        # each trial's view while it samples (None: it samples at random), made once for all
        # its sampler calls
        self._views: dict[int, _AtEpoch | None] = {}

    def _view(self, study: optuna.Study, number: int) -> _AtEpoch | None:
        trials = [
            t for t in study.get_trials(deepcopy=False)
            if t.number != number and t.state != TrialState.WAITING
        ]  # fmt: skip
        epoch = highest_epoch(trials, MIN_TRIALS, lowest=MIN_EPOCH)
        return None if epoch is None else _AtEpoch(study, at_epoch(trials, epoch))

    def _sampler_for(self, study, trial: FrozenTrial):
        if trial.number not in self._views:
            self._views[trial.number] = self._view(study, trial.number)
        view = self._views[trial.number]
        return (self._random, study) if view is None else (self._tpe, view)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._rng.random() < self._random_fraction:
            self._views[trial.number] = None
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        sampler, seen = self._sampler_for(study, trial)
        return sampler.infer_relative_search_space(seen, trial)

    def sample_relative(self, study, trial, search_space) -> dict:
        sampler, seen = self._sampler_for(study, trial)
        return sampler.sample_relative(seen, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        sampler, seen = self._sampler_for(study, trial)
        return sampler.sample_independent(seen, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._views.pop(trial.number, None)
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
        self._random.reseed_rng()
        self._rng = np.random.default_rng()
