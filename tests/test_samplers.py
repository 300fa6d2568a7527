"""Every sampler and pruner by name, each in a real search (search.run in this process, real
SQLite, the real trainer), and the refusals of combinations Optuna cannot run."""

import dataclasses

import optuna
import pytest
from optuna.trial import TrialState

from registry import UsageError
from search import run
from search.tuning.records import config_attrs
from search.tuning.records.settings import StudySettings
from search.tuning.strategies import pruners, samplers, strategy
from search.tuning.strategies.continuation import PausingSuccessiveHalving
from search.tuning.strategies.extrapolation import CurveExtrapolation
from search.tuning.strategies.multifidelity import MultiFidelityTPE

# The trace each model-based sampler leaves on the trials it proposed from its model (after
# Optuna's 10 start-up trials): proof that the workers used it, not a fallback.
MODEL_TRACE = {"tpe": "tpe:relative_params", "optuna-tpe": "tpe:relative_params",
               "mf-tpe": "tpe:relative_params",
               "gp": "gp:relative_params", "cmaes": "cma:"}  # fmt: skip
SAMPLER_CLASSES = {
    "tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler, "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler, "optuna-tpe": optuna.samplers.TPESampler,
    "mf-tpe": MultiFidelityTPE,
}  # fmt: skip
PRUNER_CLASSES = {
    "hyperband": optuna.pruners.HyperbandPruner, "median": optuna.pruners.MedianPruner,
    "sha": optuna.pruners.SuccessiveHalvingPruner, "none": optuna.pruners.NopPruner,
    "optuna-median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
    "moasha": optuna.pruners.NopPruner,  # to Optuna; the objective stops its trials itself
    "sha3": optuna.pruners.SuccessiveHalvingPruner, "sha3-promotion": PausingSuccessiveHalving,
    "sha3-hybrid": PausingSuccessiveHalving,
    "lce": CurveExtrapolation, "sha-lce": CurveExtrapolation, "hyperband-lce": CurveExtrapolation,
}  # fmt: skip


def test_every_registered_sampler_and_pruner_is_known_here():
    assert samplers.SAMPLERS.names() == sorted(SAMPLER_CLASSES)
    assert pruners.PRUNERS.names() == sorted(PRUNER_CLASSES)
    for name, cls in SAMPLER_CLASSES.items():
        assert isinstance(samplers.SAMPLERS[name](0), cls)
    for name, cls in PRUNER_CLASSES.items():
        assert isinstance(pruners.PRUNERS[name](4), cls)


@pytest.mark.parametrize("sampler", sorted(SAMPLER_CLASSES))
def test_each_sampler_runs_a_real_search(sampler, tmp_path):
    storage = f"sqlite:///{tmp_path / 'sampled.db'}"
    argv = ["--space", "test_two_knobs", "--space-module", "tests.spaces_for_tests",
            "--dataset", "sample", "--epochs", "1", "--trials", "12", "--sampler", sampler,
            "--storage", storage, "--quiet",
            "--checkpoint-dir", str(tmp_path / "checkpoints")]  # fmt: skip
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="test_two_knobs-sample", storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert study.user_attrs["sampler"] == sampler and len(complete) == 12
    for trial in complete:
        assert 1e-3 <= trial.params["sgd_lr"] <= 0.3
        assert config_attrs.stored(trial)["lr"] == trial.params["sgd_lr"]
    traces = {key for trial in study.trials for key in trial.system_attrs}
    if sampler in MODEL_TRACE:
        assert any(key.startswith(MODEL_TRACE[sampler]) for key in traces), traces
    else:
        assert not any(key.startswith(tuple(MODEL_TRACE.values())) for key in traces)


def test_refused_combinations():
    with pytest.raises(UsageError, match="unknown sampler 'bayes'"):
        strategy.check_choice("bayes", None, 1)
    with pytest.raises(UsageError, match="unknown pruner 'asha'"):
        strategy.check_choice("tpe", "asha", 1)
    with pytest.raises(UsageError, match="handles one objective only"):
        strategy.check_choice("cmaes", None, 2)
    with pytest.raises(UsageError, match="--pruner median compares one objective"):
        strategy.check_choice("tpe", "median", 2)
    with pytest.raises(UsageError, match="--pruner moasha is for several --objectives"):
        strategy.check_choice("tpe", "moasha", 1)
    assert strategy.check_choice("qmc", None, 2) == "moasha"  # measured: BENCHMARKS.md
    assert strategy.check_choice("qmc", "none", 2) == "none"
    assert strategy.check_choice("tpe", "moasha", 2) == "moasha"
    assert strategy.check_choice("random", "sha", 1) == "sha"


@pytest.mark.parametrize("given, refusal", [
    ({"pruner": "sha3-promotion"}, "--pruner sha3-promotion holds a rung's trials paused until "
     "enough have reached it: it needs --pause-pruned"),
    ({"thaw": "forecast"}, "--thaw forecast ranks paused trials: it needs --pause-pruned"),
    ({"pause_pruned": True, "pruner": "median"}, "--pause-pruned needs a pruner whose rungs can "
     "promote a paused trial (hyperband, sha, sha3, sha3-promotion, sha3-hybrid), not --pruner "
     "median"),
    ({"pause_pruned": True, "pruner": "sha3-promotion"}, "--pause-pruned needs --checkpoint-dir: a "
     "paused trial goes on from its checkpoint"),
])  # fmt: skip
def test_pausing_is_refused_without_what_it_needs(given, refusal):
    """The settings' check, as search.run makes it before a study exists (tests/test_bad_input.py
    runs the same through the command)."""
    settings = StudySettings(space="mlp", dataset="sample", epochs=9, checkpoint_dir="", **given)
    with pytest.raises(UsageError) as refused:
        strategy.check(settings)
    assert str(refused.value).startswith(refusal)
    strategy.check(dataclasses.replace(settings, pause_pruned=True, checkpoint_dir="c",
                                       pruner="sha3-promotion"))  # fmt: skip


# Each strategy as its docstring names it, against the peer or default it claims to be: Ray
# Tune's ASHAScheduler (grace period 1, reduction factor 4), the Hyperband paper's and Syne
# Tune's eta 3, Optuna's own defaults computed here rather than copied.
OPTUNA_MEDIAN = vars(optuna.pruners.MedianPruner())
PRUNER_SETTINGS = {
    "hyperband": {"_min_resource": 1, "_max_resource": 9, "_reduction_factor": 3},
    "sha": {"_min_resource": 1, "_reduction_factor": 4, "_min_early_stopping_rate": 0},
    "sha3": {"_min_resource": 1, "_reduction_factor": 3, "_min_early_stopping_rate": 0},
    # the promotion type (ASHA's Algorithm 2): eta trials at a rung before one goes on
    "sha3-promotion": {"_min_resource": 1, "_reduction_factor": 3, "_bootstrap_count": 2},
    # the promotion type at rungs 0 and 1, the others' type chosen per report
    "sha3-hybrid": {"_min_resource": 1, "_reduction_factor": 3, "_always": 2},
    "median": {**OPTUNA_MEDIAN, "_n_startup_trials": 5, "_n_warmup_steps": 1},
    "percentile": {**OPTUNA_MEDIAN, "_percentile": 25.0, "_n_startup_trials": 5,
                   "_n_warmup_steps": 1},
    "optuna-median": OPTUNA_MEDIAN,
}  # fmt: skip
INNER_SETTINGS = {
    "lce": None,
    "sha-lce": (optuna.pruners.SuccessiveHalvingPruner, PRUNER_SETTINGS["sha"]),
    "hyperband-lce": (optuna.pruners.HyperbandPruner, PRUNER_SETTINGS["hyperband"]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PRUNER_SETTINGS))
def test_each_pruner_is_set_as_its_docstring_says(name):
    settings = vars(pruners.PRUNERS[name](9))
    assert {key: settings[key] for key in PRUNER_SETTINGS[name]} == PRUNER_SETTINGS[name]


@pytest.mark.parametrize("name", sorted(INNER_SETTINGS))
def test_each_extrapolation_pruner_extrapolates_to_the_last_epoch_beside_its_rungs(name):
    pruner = pruners.PRUNERS[name](9)
    assert (pruner.max_epochs, pruner.threshold, pruner.min_epochs) == (
        9, CurveExtrapolation(9).threshold, CurveExtrapolation(9).min_epochs,
    )  # fmt: skip
    if INNER_SETTINGS[name] is None:
        assert pruner.inner is None
    else:
        cls, settings = INNER_SETTINGS[name]
        assert type(pruner.inner) is cls
        assert {key: vars(pruner.inner)[key] for key in settings} == settings


def test_tpe_is_multivariate_grouped_and_lies_for_running_trials_and_optuna_tpe_is_as_it_comes():
    ours, plain = samplers.SAMPLERS["tpe"](0), samplers.SAMPLERS["optuna-tpe"](0)
    assert (ours._multivariate, ours._group, ours._constant_liar) == (True, True, True)
    default = optuna.samplers.TPESampler()
    assert (plain._multivariate, plain._group, plain._constant_liar) == (
        default._multivariate, default._group, default._constant_liar,
    )  # fmt: skip
    mf = samplers.SAMPLERS["mf-tpe"](0)
    assert (mf._tpe._multivariate, mf._tpe._group, mf._tpe._constant_liar) == (True, True, True)


def first_params(name: str, seed: int) -> list[dict]:
    """What a sampler proposes for its first trials on a small conditional space."""
    found = optuna.create_study(sampler=samplers.SAMPLERS[name](seed))

    def objective(trial):
        x = trial.suggest_float("x", 1e-3, 1.0, log=True)
        if trial.suggest_categorical("branch", ["a", "b"]) == "a":
            trial.suggest_int("depth", 1, 8)
        return x

    found.optimize(objective, n_trials=3)
    return [trial.params for trial in found.trials]


@pytest.mark.parametrize("name", sorted(SAMPLER_CLASSES))
def test_each_sampler_is_seeded_by_the_study_s_seed(name):
    assert first_params(name, 7) == first_params(name, 7)
    assert first_params(name, 7) != first_params(name, 8)


@pytest.mark.parametrize("name", ["cmaes", "gp", "qmc"])
def test_samplers_that_fall_back_on_conditional_branches_do_so_without_a_warning_a_trial(name):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first_params(name, 0)
    assert not [w for w in caught if "independent" in str(w.message).lower()], caught
