"""Pruners by name, as --pruner chooses them: each decides after every epoch whether a trial
goes on."""

import optuna

from registry import Registry
from search.tuning.strategies import continuation, extrapolation

PRUNERS: Registry = Registry("pruner", supplied=("max_epochs",))


@PRUNERS.register("hyperband")
def hyperband(max_epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's HyperbandPruner (pairs well with TPE by Optuna's benchmarks; the default until
    the replay measured sha3 with mf-tpe ahead), the resource the epoch; able to pause and
    continue (continuation.py)."""
    return continuation.PausingHyperband(min_resource=1, max_resource=max_epochs)


@PRUNERS.register("median")
def median(max_epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


@PRUNERS.register("percentile")
def percentile(max_epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's PercentilePruner at the 25th percentile: a stricter median, stopping a trial
    in the bottom quarter of its peers at the same epoch, after the median's warm-up."""
    return optuna.pruners.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=1)


@PRUNERS.register("optuna-median")
def optuna_median(max_epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's MedianPruner as it comes (a user's default with TPE)."""
    return optuna.pruners.MedianPruner()


@PRUNERS.register("sha")
def sha(max_epochs: int) -> optuna.pruners.BasePruner:
    """Asynchronous successive halving as Ray Tune's ASHAScheduler runs it by default (grace
    period 1 epoch, reduction factor 4); able to pause and continue (continuation.py)."""
    return continuation.PausingSuccessiveHalving(min_resource=1)


@PRUNERS.register("sha3")
def sha3(max_epochs: int) -> optuna.pruners.BasePruner:
    """Asynchronous successive halving at reduction factor 3 (Syne Tune's and the Hyperband
    paper's eta; grace period 1 epoch), of the stopping type; the default until sha3-hybrid,
    and still the default with --checkpoint-dir '' (it need not pause); able to pause and
    continue."""
    return continuation.PausingSuccessiveHalving(min_resource=1, reduction_factor=3)


@PRUNERS.register("sha3-promotion")
def sha3_promotion(max_epochs: int) -> optuna.pruners.BasePruner:
    """sha3 of the promotion type (the ASHA paper's Algorithm 2, Syne Tune's
    type="promotion"): a rung lets a trial go on only once eta (3) trials have reached it, and
    then only its top third; the others wait paused (--pause-pruned, which it needs) until
    later arrivals put them in the top third. The stopping type (sha3) lets a rung's first
    trials go on whenever each is the best so far, so it finishes trials sooner but trains
    early, unselected ones to the end. Measured in the replay (BENCHMARKS.md, LCBench's held-out
    tasks, 4 workers): regret 0.195 and 0.072 at half and all of the budget against random +
    ASHA's 0.235 and 0.135 and sha3's 0.248 and 0.092, but 0.85 at a quarter (nothing
    finished yet) against their 0.48 and 0.46: an option, not the default."""
    # Optuna stops a trial while its rung holds bootstrap_count trials or fewer, itself counted
    return continuation.PausingSuccessiveHalving(
        min_resource=1, reduction_factor=3, bootstrap_count=2
    )


@PRUNERS.register("sha3-hybrid")
def sha3_hybrid(max_epochs: int) -> optuna.pruners.BasePruner:
    """sha3 of the promotion type at its first two rungs (epochs 1 and 3), and at every rung
    once a trial has finished; of the stopping type at the higher rungs until then. The first
    finished trial is the best of a few selected at the cheap rungs, not the first that came
    (sha3) nor the best of 81 after a quarter of the budget (sha3-promotion); after it, no
    trial is trained to the end without a rung's top third behind it. The default, paused
    (measured in the replay, BENCHMARKS.md: on LCBench's held-out tasks with 4 workers, regret
    0.447 / 0.209 / 0.087 at a quarter, half and all of the budget against random + ASHA's
    0.477 / 0.235 / 0.135 and sha3's 0.458 / 0.248 / 0.092)."""
    return continuation.HybridSuccessiveHalving(reduction_factor=3, always=2)


@PRUNERS.register("lce")
def lce(max_epochs: int) -> optuna.pruners.BasePruner:
    """Learning-curve extrapolation (extrapolation.py): stops a trial once its curve, fitted
    and extrapolated to --epochs, is unlikely (p < 0.05) to end above the best finished one."""
    return extrapolation.CurveExtrapolation(max_epochs)


@PRUNERS.register("sha-lce")
def sha_lce(max_epochs: int) -> optuna.pruners.BasePruner:
    """--pruner sha, and between its rungs the extrapolation of --pruner lce: a trial stops
    when either says so."""
    inner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    return extrapolation.CurveExtrapolation(max_epochs, inner=inner)


@PRUNERS.register("hyperband-lce")
def hyperband_lce(max_epochs: int) -> optuna.pruners.BasePruner:
    """--pruner hyperband, and between its rungs the extrapolation of --pruner lce."""
    inner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    return extrapolation.CurveExtrapolation(max_epochs, inner=inner)


@PRUNERS.register("moasha")
def moasha(max_epochs: int) -> optuna.pruners.BasePruner:
    """Successive halving by Pareto front, for several --objectives: the objective stops
    trials itself (pareto_halving.py), since Optuna's pruners take one value; to Optuna,
    nothing."""
    return optuna.pruners.NopPruner()


@PRUNERS.register("none")
def none(max_epochs: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


MULTI_OBJECTIVE_PRUNERS = ("moasha", "none")
DEFAULT_PRUNER = "sha3-hybrid"  # it pauses trials: with no --checkpoint-dir, its stopping type
UNCHECKPOINTED_PRUNER = "sha3"
DEFAULT_MULTI_OBJECTIVE_PRUNER = "moasha"  # measured against none (BENCHMARKS.md)
# --pause-pruned: rungs that promote
PAUSING_PRUNERS = ("hyperband", "sha", "sha3", "sha3-promotion", "sha3-hybrid")
# rungs that hold trials paused: they need --pause-pruned
WAITING_PRUNERS = ("sha3-promotion", "sha3-hybrid")
