"""Samplers and pruners by name, as --sampler and --pruner choose them."""

import optuna

from registry import Registry, UsageError
from search.tuning import continuation

SAMPLERS: Registry = Registry("sampler", supplied=("seed",))
PRUNERS: Registry = Registry("pruner", supplied=("max_epochs",))

# Our spaces are conditional by design, so samplers that fall back to independent sampling
# for conditional or categorical parameters need not warn about it on every trial.


@SAMPLERS.register("tpe")
def tpe(seed: int | None) -> optuna.samplers.BaseSampler:
    """Multivariate TPE grouped by the conditional branches; its constant liar steers parallel
    workers away from the points that running trials are already trying."""
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)


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


@PRUNERS.register("hyperband")
def hyperband(max_epochs: int) -> optuna.pruners.BasePruner:
    """The default: pairs well with TPE (Optuna's benchmarks); the resource is the epoch.
    Optuna's HyperbandPruner, able to pause and continue (continuation.py)."""
    return continuation.PausingHyperband(min_resource=1, max_resource=max_epochs)


@PRUNERS.register("median")
def median(max_epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


@PRUNERS.register("optuna-median")
def optuna_median(max_epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's MedianPruner as it comes (a user's default with TPE)."""
    return optuna.pruners.MedianPruner()


@PRUNERS.register("sha")
def sha(max_epochs: int) -> optuna.pruners.BasePruner:
    """Asynchronous successive halving as Ray Tune's ASHAScheduler runs it by default (grace
    period 1 epoch, reduction factor 4); able to pause and continue (continuation.py)."""
    return continuation.PausingSuccessiveHalving(min_resource=1)


@PRUNERS.register("moasha")
def moasha(max_epochs: int) -> optuna.pruners.BasePruner:
    """Successive halving by Pareto front, for several --objectives: the objective stops
    trials itself (pareto_halving.py), since Optuna's pruners take one value; to Optuna,
    nothing."""
    return optuna.pruners.NopPruner()


@PRUNERS.register("none")
def none(max_epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


SINGLE_OBJECTIVE_SAMPLERS = {"cmaes"}
MULTI_OBJECTIVE_PRUNERS = ("moasha", "none")
DEFAULT_PRUNER = "hyperband"
DEFAULT_MULTI_OBJECTIVE_PRUNER = "moasha"  # measured against none (BENCHMARKS.md)
PAUSING_PRUNERS = ("hyperband", "sha")  # --pause-pruned: successive halving's rungs promote


def check_choice(sampler: str, pruner: str | None, objectives: int) -> str:
    """Refuse unknown names and combinations that cannot run; the pruner to use (moasha or
    none for a multi-objective study: Optuna's own pruners take one value)."""
    SAMPLERS[sampler]
    if objectives == 1:
        chosen = pruner or DEFAULT_PRUNER
        PRUNERS[chosen]
        if chosen == "moasha":
            raise UsageError("--pruner moasha is for several --objectives; use hyperband or sha")
        return chosen
    if sampler in SINGLE_OBJECTIVE_SAMPLERS:
        raise UsageError(
            f"--sampler {sampler} handles one objective only; use tpe, gp, random or qmc"
        )
    chosen = pruner or DEFAULT_MULTI_OBJECTIVE_PRUNER
    if chosen not in MULTI_OBJECTIVE_PRUNERS:
        PRUNERS[chosen]  # an unknown name is refused as such first
        raise UsageError(
            f"--pruner {chosen} compares one objective; with several --objectives use "
            f"{' or '.join(MULTI_OBJECTIVE_PRUNERS)}"
        )
    return chosen
