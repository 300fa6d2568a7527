"""Every sampler and pruner by name, each in a real search (search.run in this process, real
SQLite, the real trainer), and the refusals of combinations Optuna cannot run."""

import optuna
import pytest
from optuna.trial import TrialState

from registry import UsageError
from search import run
from search.tuning.records import config_attrs
from search.tuning.strategies import pruners, samplers, strategy
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
    "sha3": optuna.pruners.SuccessiveHalvingPruner, "lce": CurveExtrapolation, "sha-lce": CurveExtrapolation, "hyperband-lce": CurveExtrapolation,
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
            "--storage", storage, "--quiet"]  # fmt: skip
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
