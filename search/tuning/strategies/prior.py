"""A prior from an earlier study guiding the search (--warm-start-from STUDY --warm-start-by
prior), as PriorBand does (Mallik et al., "PriorBand: Practical Hyperparameter Optimization in the Age
of Deep Learning", NeurIPS 2023; its ASHA variant, since our default pruner is successive
halving): instead of boxing the space around the earlier study's best configs, a share of the
new trials is drawn near them, a share near this study's incumbent, and the rest is the study's
own sampler's (mf-tpe by default, itself half random, half model).

PriorBand's ensemble sampling, at the base rung where every new trial starts: half the trials
are the sampler's (PriorBand's uniform half), half come from the prior or the incumbent. Their
split is PriorBand's "dynamic" rule: until a trial has trained all its epochs, every one is
the prior's; then the top third (at least 3) of the trials at the highest epoch that 3 trials
reached are scored by the prior's density and by the incumbent's, weighted by rank (the best
weighs most), and the two scores' ratio is the split. So a prior the study's best trials agree
with keeps its share, and a misleading one loses it to the incumbent within a few rungs.

The prior is a mixture of the earlier study's best configs (PriorBand's is one config), each
parameter a truncated normal around the config's value in the space's unit coordinates (log
where the parameter is sampled so) with PriorBand's "medium" confidence (NePS: standard
deviation 0.25); a choice keeps the config's value with weight 4 against 1 for each other (our
choice). Incumbent draws are PriorBand's mutation: each parameter, with probability 0.5,
moved by a normal of standard deviation 0.25 in unit coordinates, else kept. Written here
because neither Optuna nor a library it works with offers a prior (NePS's PriorBand is a whole
optimizer with its own state, not a sampler); the draws use scipy's truncated normal."""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search.tuning.strategies import multifidelity

PRIOR_SHARE = 0.5  # PriorBand's geometric weight at the base rung: w_prior = eta**0 * w_random
CONFIDENCE = 0.25  # PriorBand's "medium": a numeric parameter's standard deviation, unit scale
CHOICE_WEIGHT = 4.0  # a choice's own value against 1 for each other
MUTATION_RATE, MUTATION_STD = 0.5, 0.25  # PriorBand's incumbent mutation
ETA = 3  # the rung's top 1/ETA, at least ETA trials (PriorBand's eta; our sha3's)
PRIOR, INCUMBENT, SAMPLER = "prior", "incumbent", "sampler"


def to_unit(value: Any, distribution: BaseDistribution) -> float:
    """A number's place in its range, 0 to 1 (log where it is sampled so)."""
    low, high = distribution.low, distribution.high
    if distribution.log:
        value, low, high = math.log(value), math.log(low), math.log(high)
    return 0.5 if high == low else (value - low) / (high - low)


def from_unit(place: float, distribution: BaseDistribution) -> Any:
    """The number at a place of its range (clamped to it), on its step's grid."""
    low, high = distribution.low, distribution.high
    if distribution.log:
        value = math.exp(math.log(low) + place * (math.log(high) - math.log(low)))
    else:
        value = low + place * (high - low)
    step = distribution.step
    if step is not None:
        value = low + round((value - low) / step) * step
    value = min(max(value, low), high)
    return int(round(value)) if isinstance(distribution, IntDistribution) else float(value)


def truncated_normal(rng: np.random.Generator, center: float, scale: float) -> float:
    from scipy import stats  # here: half a second a process, and most workers draw no prior

    a, b = (0 - center) / scale, (1 - center) / scale
    return float(stats.truncnorm.rvs(a, b, loc=center, scale=scale, random_state=rng))


def near(rng: np.random.Generator, value: Any, distribution: BaseDistribution) -> Any:
    """A draw near `value`: a truncated normal of CONFIDENCE, or the same choice by weight."""
    if isinstance(distribution, CategoricalDistribution):
        choices = distribution.choices
        weights = np.array([CHOICE_WEIGHT if c == value else 1.0 for c in choices])
        return choices[rng.choice(len(choices), p=weights / weights.sum())]
    return from_unit(truncated_normal(rng, to_unit(value, distribution), CONFIDENCE), distribution)


def inside(value: Any, distribution: BaseDistribution) -> bool:
    """Whether a value (None: unset) is one the distribution can take."""
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    return value is not None and distribution.low <= value <= distribution.high


def mutated(rng: np.random.Generator, value: Any, distribution: BaseDistribution) -> Any:
    """PriorBand's incumbent mutation of one parameter."""
    if rng.random() >= MUTATION_RATE:
        return value
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[rng.integers(len(distribution.choices))]
    place = to_unit(value, distribution) + rng.normal(0, MUTATION_STD)
    return from_unit(place, distribution)


def density(params: Mapping, center: Mapping, distributions: Mapping, scale: float) -> float:
    """A config's density under a product of truncated normals of `scale` (choices weighted
    CHOICE_WEIGHT) around `center`, over the parameters both set where the center's value is
    one the trial's distribution can take (elsewhere the sampler drew it: see sample_independent)."""
    found = 1.0
    for name, value in params.items():
        distribution = distributions.get(name)
        if distribution is None or not inside(center.get(name), distribution):
            continue
        if isinstance(distribution, CategoricalDistribution):
            total = CHOICE_WEIGHT + len(distribution.choices) - 1
            found *= (CHOICE_WEIGHT if value == center[name] else 1.0) / total
            continue
        found *= truncated_normal_pdf(
            to_unit(value, distribution), to_unit(center[name], distribution), scale
        )
    return found


def truncated_normal_pdf(x: float, center: float, scale: float) -> float:
    """scipy.stats.truncnorm's density on [0, 1], written out: scipy's costs 50 us a call,
    and a rung's scores take thousands (a test computes both)."""

    def cdf(z: float) -> float:
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    z = (x - center) / scale
    mass = cdf((1 - center) / scale) - cdf((0 - center) / scale)
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / scale / mass


def top_of_highest_rung(trials: Sequence[FrozenTrial], maximize: bool) -> list[FrozenTrial]:
    """The top third (at least ETA) of the trials at the highest epoch that ETA reached, best
    first; [] where none has."""
    epoch = multifidelity.highest_epoch(trials, ETA)
    if epoch is None:
        return []
    there = [t for t in trials if math.isfinite(t.intermediate_values.get(epoch, math.nan))]
    there.sort(key=lambda t: t.intermediate_values[epoch], reverse=maximize)
    return there[: max(len(there) // ETA, ETA)]


def prior_share(
    trials: Sequence[FrozenTrial], configs: Sequence[Mapping], incumbent: FrozenTrial | None,
    maximize: bool,
) -> float:  # fmt: skip
    """Of the draws that are not the sampler's, the prior's share (the rest the incumbent's):
    all of them until a trial has finished; then the rank-weighted densities of the highest
    rung's top trials under the prior and under the incumbent's mutation, compared."""
    top = top_of_highest_rung(trials, maximize)
    if incumbent is None or not top:
        return 1.0
    prior_score = incumbent_score = 0.0
    for rank, trial in enumerate(top):
        weight = len(top) - rank
        distributions = trial.distributions
        prior_score += weight * np.mean(
            [density(trial.params, config, distributions, CONFIDENCE) for config in configs]
        )
        incumbent_score += weight * density(
            trial.params, incumbent.params, distributions, MUTATION_STD
        )
    return prior_score / (prior_score + incumbent_score)  # densities are never 0 on [0, 1]


class PriorSampler(BaseSampler):
    """The study's sampler, a share of whose trials are drawn from the earlier study's best
    `configs` or near this study's incumbent instead (PriorBand's ensemble sampling)."""

    def __init__(self, base: BaseSampler, configs: Sequence[Mapping], seed: int | None):
        self._base, self._configs = base, [dict(c) for c in configs]
        self._rng = np.random.default_rng(seed)
        self._draws: dict[int, tuple[str, Mapping]] = {}  # trial -> (kind, its center)

    def kind_of(self, number: int) -> str:
        return self._draws.get(number, (SAMPLER, {}))[0]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)
        if not self._configs or self._rng.random() >= PRIOR_SHARE:
            return
        # this trial and queued ones have no values yet: they score nothing
        trials = study.get_trials(deepcopy=False)
        # by validation accuracy, the first objective whatever others the study has (which
        # report no curve: there the prior keeps its whole share)
        maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        finished = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max if maximize else min
        incumbent = best(finished, key=lambda t: t.values[0]) if finished else None
        if self._rng.random() < prior_share(trials, self._configs, incumbent, maximize):
            center = self._configs[self._rng.integers(len(self._configs))]
            self._draws[trial.number] = (PRIOR, center)
        else:
            self._draws[trial.number] = (INCUMBENT, incumbent.params)

    def infer_relative_search_space(self, study, trial) -> dict[str, BaseDistribution]:
        if self.kind_of(trial.number) != SAMPLER:
            return {}  # every parameter drawn one at a time, near its center
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space) -> dict:
        if self.kind_of(trial.number) != SAMPLER:
            return {}  # not the sampler's to call: grouped TPE asserts it inferred a space first
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        kind, center = self._draws.get(trial.number, (SAMPLER, {}))
        # the sampler's where the center took another branch, or its value is outside a range
        # that depends on another parameter
        if kind == SAMPLER or not inside(center.get(param_name), param_distribution):
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        draw = near if kind == PRIOR else mutated
        return draw(self._rng, center[param_name], param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self._draws.pop(trial.number, None)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
        self._rng = np.random.default_rng()
