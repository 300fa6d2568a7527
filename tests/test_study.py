"""Studies that record how they are run, so any worker runs them the same way: real SQLite."""

import dataclasses

import optuna
import pytest

import spaces
from registry import RunFailure, UsageError
from search.tuning import study
from search.tuning.records import settings
from search.tuning.store import storage

FIXED = {
    "space": "mlp", "dataset": "sample", "classes": [], "init_from": "", "epochs": 2,
    "objectives": ("accuracy",), "fixed_params": {},
}  # fmt: skip
OPTIONS = {
    "trials": 5, "sampler": "tpe", "pruner": "hyperband", "seed": 3, "space_module": None,
    "heartbeat_interval": 60, "grace_period": 180, "compile": "", "checkpoint_dir": "",
    "keep_checkpoints": 0,
}  # fmt: skip


SETTINGS = study.checked({**FIXED, **OPTIONS})


@pytest.fixture
def opened(tmp_path):
    return storage.open_storage(f"sqlite:///{tmp_path / 's.db'}")


def test_a_created_study_records_its_settings_and_a_resumed_one_keeps_them(opened):
    created = study.create_or_resume(opened, "s", SETTINGS)
    recorded = dataclasses.replace(SETTINGS, checkpoint_key=created.user_attrs["checkpoint_key"])
    assert study.settings_of(created) == recorded
    assert created.user_attrs == recorded.to_attrs()
    later = {
        "storage_patience": 1800,
        "checkpoint_key": "",
        "epoch_budget": 0,
        "pause_pruned": False,
        "keep_paused": 20,
        "warm_start_from": "",
        "search_box": {},
        "scheduler": "",
        "population": 0,
        "pbt_interval": 0,
        "thaw": "rung",
        "warm_start_prior": [],
    }  # defaults of settings added since
    assert SETTINGS.to_attrs() == {**FIXED, **OPTIONS, "objectives": ["accuracy"], **later}
    assert created.metric_names == ["val_accuracy"]
    more = study.checked({**FIXED, **OPTIONS, "trials": 9})
    resumed = study.create_or_resume(opened, "s", more)
    assert study.settings_of(resumed).trials == 9  # run options follow the latest command
    assert len(study.names(opened)) == 1


@pytest.mark.parametrize(
    "changed, message",
    [
        ({"epochs": 4}, "was created with --space mlp --dataset sample --epochs 2"),
        ({"objectives": ("accuracy", "params")}, "has other objectives than --objectives"),
    ],
)
def test_resuming_with_other_fixed_settings_is_refused(opened, changed, message):
    study.create_or_resume(opened, "s", SETTINGS)
    with pytest.raises(UsageError, match=message):
        study.create_or_resume(opened, "s", study.checked({**FIXED, **OPTIONS, **changed}))


def test_a_study_from_before_an_option_existed_reads_with_its_meaning_then(opened):
    older = optuna.create_study(study_name="old", storage=opened)
    for key, value in {**FIXED, **OPTIONS}.items():
        if key != "compile":
            older.set_user_attr(key, value)
    assert study.settings_of(study.load(opened, "old")).compile == ""


@pytest.mark.parametrize("recorded, mode", [(True, "default"), (False, "")])
def test_a_study_that_recorded_compile_as_on_or_off_reads_as_its_mode(opened, recorded, mode):
    """Before --compile took torch.compile's mode, studies recorded a bool."""
    older = optuna.create_study(study_name="old", storage=opened)
    for key, value in {**FIXED, **OPTIONS, "compile": recorded}.items():
        older.set_user_attr(key, value)
    assert study.settings_of(study.load(opened, "old")).compile == mode


def test_a_study_not_made_by_search_run_is_refused_with_what_it_lacks(opened):
    optuna.create_study(study_name="foreign", storage=opened)
    with pytest.raises(UsageError, match="was not created by search.run .it lacks space"):
        study.settings_of(study.load(opened, "foreign"))
    with pytest.raises(UsageError, match="was not created by search.run .it lacks space.*another"):
        study.create_or_resume(opened, "foreign", SETTINGS)  # search.run does not adopt it
    assert study.load(opened, "foreign").user_attrs == {}
    with pytest.raises(UsageError, match=r"no study named 'nope' .* \(studies there: foreign\)"):
        study.load(opened, "nope")


def test_a_bad_value_recorded_by_an_older_version_opens_with_a_line_that_names_it(opened):
    older = optuna.create_study(study_name="old", storage=opened, direction="maximize")
    for key, value in {**FIXED, **OPTIONS, "seed": 99999999999}.items():
        older.set_user_attr(key, value)
    with pytest.raises(UsageError, match="study 'old' holds a setting .*setting 'seed' must be"):
        study.settings_of(study.load(opened, "old"))
    repaired = study.create_or_resume(opened, "old", SETTINGS)  # search.run records good ones
    assert study.settings_of(repaired).seed == 3


@pytest.mark.parametrize(
    "changed, message",
    [
        ({"seed": 99999999999}, "--seed must be less than or equal to 4294967295"),
        ({"seed": -1}, "--seed must be greater than or equal to 0, not -1"),
        ({"trials": 0}, "--trials must be greater than 0"),
        ({"sampler": "bayes"}, "unknown sampler 'bayes'"),
        ({"classes": ["cat"]}, "'classes' names one class"),
        ({"compile": "maybe"}, "--compile must be '', 'default', 'reduce-overhead'.*not 'maybe'"),
        ({"objectives": ("params",)}, "--objectives must be accuracy"),
    ],
)
def test_settings_are_checked_before_anything_is_recorded(changed, message):
    with pytest.raises(UsageError, match=message):
        study.checked({**FIXED, **OPTIONS, **changed})


def test_workers_get_the_recorded_sampler_and_pruner_with_seeds_of_their_own(opened):
    chosen = study.checked({**FIXED, **OPTIONS, "sampler": "qmc", "pruner": "median"})
    created = study.create_or_resume(opened, "s", chosen)
    recorded = study.settings_of(created)
    first = study.open_for_worker(opened, "s", recorded, slot=0)
    second = study.open_for_worker(opened, "s", recorded, slot=1)
    assert isinstance(first.sampler, optuna.samplers.QMCSampler)
    assert isinstance(first.pruner, optuna.pruners.MedianPruner)
    assert first.sampler._seed != second.sampler._seed


def test_warm_starts_are_queued_once_per_study(opened):
    created = study.create_or_resume(opened, "s", SETTINGS)
    assert study.enqueue_warm_starts(created, "mlp") == len(spaces.warm_starts("mlp"))
    assert study.enqueue_warm_starts(created, "mlp") == 0
    queued = created.get_trials(states=(optuna.trial.TrialState.WAITING,))
    expected = [start.params for start in spaces.warm_starts("mlp")]
    assert [t.system_attrs["fixed_params"] for t in queued] == expected


@pytest.mark.parametrize("text", ["params", "accuracy,accuracy", "accuracy,flops", ""])
def test_objectives_must_start_with_accuracy_once(text):
    with pytest.raises(UsageError, match="--objectives must be accuracy"):
        settings.check_objectives(settings.parse_objectives(text))


def test_a_recorded_setting_reads_as_the_flag_that_gave_it():
    assert (
        settings.as_flag("fixed_params", {"depth": 2, "taper": True}) == "--fix depth=2,taper=True"
    )
    assert settings.as_flag("classes", ["car", "deer"]) == "--classes car,deer"
    assert settings.as_flag("init_from", "/c.pt") == "--init-from /c.pt"


def test_of_two_commands_creating_one_study_at_once_the_second_fails_with_one_line(
    opened, monkeypatch
):
    """Both looked and found no study 'race'; the first created it. The second must not go
    on to record its own settings over the first's (another space, say)."""
    study.create_or_resume(opened, "race", SETTINGS)
    monkeypatch.setattr(study, "names", lambda storage: [])  # what the second saw, earlier
    other = study.checked({**FIXED, **OPTIONS, "space": "resnet"})
    with pytest.raises(RunFailure, match="study 'race' was created by another command just now"):
        study.create_or_resume(opened, "race", other)
    monkeypatch.undo()
    assert study.settings_of(study.load(opened, "race")).space == "mlp"


def test_a_study_draws_its_own_checkpoint_key_and_keeps_it_when_resumed(opened):
    first = study.settings_of(study.create_or_resume(opened, "keyed", SETTINGS)).checkpoint_key
    again = study.settings_of(study.create_or_resume(opened, "keyed", SETTINGS)).checkpoint_key
    other = study.settings_of(study.create_or_resume(opened, "other", SETTINGS)).checkpoint_key
    assert len(first) == 8 and first == again != other
