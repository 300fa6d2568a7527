"""The objective: a space's config trained by the real trainer, reported to a real study."""

import optuna
import pytest
import torch
from optuna.trial import TrialState

import spaces
from search.training.config import TrialConfig
from search.tuning.execution import objective
from search.tuning.execution.endings import TrialFailed
from search.tuning.execution.objective import Objective
from search.tuning.records import config_attrs
from search.tuning.store import storage
from tests.spaces_for_tests import tiny_mlp

CONTEXT = spaces.SpaceContext("sample", 2, 0)
CPU = torch.device("cpu")


@spaces.register_space("test_objective_tiny")
def tiny(trial, context):
    return tiny_mlp(trial, context)


@spaces.register_space("test_objective_diverging")
def diverging(trial, context):
    return tiny_mlp(trial, context, lr=1e12)


@spaces.register_space("test_objective_broken")
def broken(trial, context):
    return tiny_mlp(trial, context, model_args={"width": 16, "activation": "nope"})


@spaces.register_space("test_objective_invalid")
def invalid(trial, context):
    """A user's space that builds its config by hand with a value no network takes."""
    return TrialConfig(model="mlp", model_args={"width": 0, "depth": 1}, dataset="sample")


def study_in(tmp_path, directions=("maximize",)) -> optuna.Study:
    opened = storage.open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    return optuna.create_study(storage=opened, directions=list(directions))


def test_a_trial_reports_every_epoch_and_records_what_it_trained(tmp_path, sample):
    found = study_in(tmp_path)
    found.optimize(Objective("test_objective_tiny", CONTEXT, sample, CPU), n_trials=1)
    trial = found.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == [1, 2]
    assert trial.value == trial.intermediate_values[2]  # the last epoch's val accuracy
    assert config_attrs.stored(trial) == tiny_mlp(trial, CONTEXT).to_dict()
    assert trial.user_attrs["epochs_run"] == 2 and trial.user_attrs["device"].startswith("cpu")
    assert trial.user_attrs["param_count"] == (3 * 32 * 32 + 1) * 16 + (16 + 1) * 10
    assert trial.user_attrs["worker"].split(":")[1].isdigit()  # host:pid, for search.status


def test_a_diverging_trial_is_pruned_with_the_reason(tmp_path, sample):
    found = study_in(tmp_path)
    found.optimize(Objective("test_objective_diverging", CONTEXT, sample, CPU), n_trials=1)
    trial = found.trials[0]
    assert trial.state == TrialState.PRUNED
    assert "the training loss became nan in epoch 1" in trial.user_attrs["prune_reason"]


def test_a_broken_config_fails_its_trial_with_reason_and_traceback(tmp_path, sample):
    found = study_in(tmp_path)
    found.optimize(
        Objective("test_objective_broken", CONTEXT, sample, CPU), n_trials=1, catch=(TrialFailed,)
    )
    trial = found.trials[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["fail_reason"].startswith("UsageError: unknown activation 'nope'")
    assert "Traceback" in trial.user_attrs["traceback"]


def test_a_config_a_space_got_wrong_fails_its_trial_at_birth_and_the_worker_goes_on(
    tmp_path, sample
):
    """Checked before anything is recorded or trained: one line that names the trial, the
    space and the field's whole path, as the trial's fail reason; the next trial runs."""
    found = study_in(tmp_path)
    found.optimize(
        Objective("test_objective_invalid", CONTEXT, sample, CPU), n_trials=2,
        catch=(TrialFailed,),
    )  # fmt: skip
    assert [trial.state for trial in found.trials] == [TrialState.FAIL] * 2
    reason = found.trials[1].user_attrs["fail_reason"]
    assert reason.startswith("trial 1: space 'test_objective_invalid': 'model_args.width'")
    assert "\n" not in reason and "config" not in found.trials[1].user_attrs  # nothing recorded


def test_several_objectives_are_measured_and_nothing_is_reported(tmp_path, sample):
    found = study_in(tmp_path, ("maximize", "minimize", "minimize"))
    measured = Objective(
        "test_objective_tiny", CONTEXT, sample, CPU, ("accuracy", "params", "latency")
    )
    found.optimize(measured, n_trials=1)
    trial = found.trials[0]
    accuracy, params, latency = trial.values
    assert not trial.intermediate_values
    assert params == trial.user_attrs["param_count"] and 0 < accuracy <= 1 and latency > 0


@pytest.mark.parametrize(
    "error, out_of_memory",
    [
        (torch.OutOfMemoryError("CUDA out of memory"), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 10 GB"), True),
        (RuntimeError("shapes cannot be multiplied"), False),
    ],
)
def test_out_of_memory_is_told_apart_from_other_errors(error, out_of_memory):
    assert objective.is_out_of_memory(error) is out_of_memory
    reason = objective.failure_reason(error, "cpu (2 threads)")
    assert reason.startswith("out of memory on cpu") == out_of_memory


def test_a_space_s_error_is_placed_at_the_space_s_own_line_not_optuna_s():
    """objective.where: the deepest frame outside Optuna, where a space's bug is."""
    import inspect

    def space(trial):
        trial.suggest_float("lr", 1.0, 0.1)  # low above high: Optuna raises, in its own code

    study = optuna.create_study()
    try:
        space(study.ask())
    except ValueError as error:
        line = inspect.getsourcelines(space)[1] + 1
        assert objective.where(error) == f" ({__file__}, line {line})"
    else:
        raise AssertionError("Optuna accepted a range whose low is above its high")
