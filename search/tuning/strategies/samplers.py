"""Samplers by name, as --sampler chooses them."""

import optuna

from registry import Registry
from search.tuning.strategies import multifidelity

SAMPLERS: Registry = Registry("sampler", supplied=("seed",))

# Our spaces are conditional by design, so samplers that fall back to independent sampling
# for conditional or categorical parameters need not warn about it on every trial.


@SAMPLERS.register("tpe")
def tpe(seed: int | None) -> optuna.samplers.BaseSampler:
    """Multivariate TPE grouped by the conditional branches; its constant liar steers parallel
    workers away from the points that running trials are already trying."""
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


@SAMPLERS.register("mf-tpe")
def mf_tpe(seed: int | None) -> optuna.samplers.BaseSampler:
    """--sampler tpe fitted on the trials' values at the highest epoch that enough of them
    reached, half its trials random (BOHB's rule; multifidelity.py): for a pruner that stops
    most trials early, whose values at different epochs do not compare. The default with one
    objective (measured: BENCHMARKS.md, the replay)."""
    return multifidelity.MultiFidelityTPE(
        tpe(seed), seed, random_fraction=multifidelity.DEFAULT_RANDOM_FRACTION
    )


@SAMPLERS.register("random")
def random(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("cmaes")
def cmaes(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


@SAMPLERS.register("gp")
def gp(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


@SAMPLERS.register("qmc")
def qmc(seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.QMCSampler(
        seed=seed, scramble=True, warn_independent_sampling=False, warn_asynchronous_seeding=False
    )


@SAMPLERS.register("optuna-tpe")
def optuna_tpe(seed: int | None) -> optuna.samplers.BaseSampler:
    """Optuna's TPESampler as it comes (a user's default): not grouped by the conditional
    branches."""
    return optuna.samplers.TPESampler(seed=seed)


SINGLE_OBJECTIVE_SAMPLERS = {"cmaes", "mf-tpe"}  # mf-tpe models the accuracy's curve
DEFAULT_SAMPLER = "mf-tpe"
DEFAULT_MULTI_OBJECTIVE_SAMPLER = "tpe"  # several objectives report no curve to Optuna
