"""search.run end to end: real SQLite files, real Optuna, each command through the boundary a
user's `python -m` goes through (cli.run_main), in this interpreter."""

import shutil
import statistics

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

import spaces
import tests.spaces_for_tests  # noqa: F401  (registers the test spaces here too)
from search import run
from search.tuning.records import config_attrs, keys
from tests.conftest import run_here_once

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Upsampling an MLP's input is what report 004 did, not what these tests test: they run the
# mlp space at the sample's own 32 pixels, where a trial takes seconds, not tens of them.
NATIVE_SIZE = ["--fix", "image_size=0"]


def load(db_path, name="mlp-sample"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db_path}")


@pytest.fixture(scope="module")
def mlp_study(tmp_path_factory):
    """A 3-trial study of the mlp space on the packaged sample, run as a user would."""
    folder = tmp_path_factory.mktemp("study")
    result = run_here_once(
        "search.run", "--space", "mlp", "--trials", "3", "--dataset", "sample", "--epochs", "2",
        *NATIVE_SIZE, cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return folder, result


def test_run_writes_a_study_with_the_requested_finished_trials(mlp_study):
    folder, result = mlp_study
    study = load(folder / "studies.db")  # the default storage, in the working directory
    assert len(study.get_trials(states=FINISHED)) == 3
    key = study.user_attrs["checkpoint_key"]
    assert len(key) == 8 and int(key, 16) >= 0  # drawn when the study was created
    assert study.user_attrs == {
        "space": "mlp", "dataset": "sample", "classes": [], "init_from": "", "epochs": 2,
        "objectives": ["accuracy"], "fixed_params": {"image_size": 0},
        "trials": 3, "sampler": "mf-tpe", "pruner": "sha3-hybrid", "seed": 0, "space_module": None,
        "heartbeat_interval": 60, "grace_period": 180, "storage_patience": 1800, "compile": "",
        "checkpoint_dir": str(folder / "checkpoints"), "checkpoint_key": key,
        "keep_checkpoints": 0, "epoch_budget": 0, "pause_pruned": True, "keep_paused": 20,
        "warm_start_from": "", "search_box": {}, "scheduler": "", "population": 0,
        "pbt_interval": 0, "thaw": "rung", "warm_start_prior": [],
    }  # fmt: skip
    # Every trial checkpointed its epochs there; the complete ones' were removed, the paused
    # ones' stay (--keep-paused) to be continued
    paused = {f"trial-{t.number}.pt" for t in study.trials if keys.PAUSED in t.user_attrs}
    assert (folder / "checkpoints").is_dir()
    assert {path.name for path in (folder / "checkpoints").rglob("*.pt")} == paused
    assert study.metric_names == ["val_accuracy"]
    for trial in study.get_trials(states=FINISHED):
        assert config_attrs.stored(trial)["model"] == "mlp"
        assert trial.intermediate_values  # the learning curve, one point per epoch
    complete = study.get_trials(states=(TrialState.COMPLETE,))[0]
    attrs = complete.user_attrs
    assert {"param_count", "seconds_per_epoch", "images_per_second", "device", "train_loss"} <= set(
        attrs
    )
    assert attrs["param_count"] > 0 and attrs["device"].startswith("cpu")
    assert len(complete.intermediate_values) == 2  # the budget: every trial plans --epochs
    # Progress lines and the summary a person reads.
    assert result.stdout.count("] trial ") == 3
    assert (
        f"best val_accuracy {study.best_value:.4f} (trial {study.best_trial.number})"
        in result.stdout
    )
    assert "optuna-dashboard sqlite:///studies.db" in result.stdout
    assert "python -m search.export --study mlp-sample -o best.yaml" in result.stdout
    assert result.stderr == ""


def test_running_again_with_more_trials_resumes_the_study(mlp_study, tmp_path, run_here):
    shutil.copy(mlp_study[0] / "studies.db", tmp_path / "studies.db")
    before = [t.params for t in load(tmp_path / "studies.db").trials]
    result = run_here(
        "search.run", "--space", "mlp", "--trials", "5", "--dataset", "sample", "--epochs", "2",
        *NATIVE_SIZE, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3/5 trials finished" in result.stdout
    study = load(tmp_path / "studies.db")
    assert len(study.get_trials(states=FINISHED)) == 5
    assert [t.params for t in study.trials[:3]] == before  # the old trials, untouched

    again = run_here(
        "search.run", "--space", "mlp", "--trials", "5", "--dataset", "sample", "--epochs", "2",
        *NATIVE_SIZE, cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "5/5 trials finished" in again.stdout
    assert len(load(tmp_path / "studies.db").trials) == 5  # full: no trial added


def test_resuming_with_other_settings_is_refused_and_leaves_the_study_alone(
    mlp_study, tmp_path, run_here
):
    shutil.copy(mlp_study[0] / "studies.db", tmp_path / "studies.db")
    result = run_here(
        "search.run", "--space", "mlp", "--trials", "5", "--dataset", "sample", "--epochs", "4",
        *NATIVE_SIZE, "--study", "mlp-sample", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "search.run: error: study 'mlp-sample' was created with --space mlp --dataset sample "
        "--epochs 2 --objectives accuracy --fix image_size=0; resume it with the same flags or "
        "start another with --study NAME"
    ]
    assert len(load(tmp_path / "studies.db").trials) == 3


@pytest.mark.parametrize("pruner", ["hyperband", "median", "sha"])
def test_the_pruner_stops_hopeless_trials(tmp_path, pruner, capsys):
    storage = f"sqlite:///{tmp_path / 'pruning.db'}"
    argv = [
        "--space", "test_hopeless_lr", "--trials", "16", "--dataset", "sample", "--epochs", "4",
        "--pruner", pruner, "--sampler", "random", "--storage", storage,
        "--space-module", "tests.spaces_for_tests",
        "--checkpoint-dir", str(tmp_path / "checkpoints"),
    ]  # fmt: skip
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="test_hopeless_lr-sample", storage=storage)
    assert study.user_attrs["pruner"] == pruner
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(pruned) + len(complete) == 16
    assert pruned, "no trial was pruned"
    assert all(t.user_attrs["prune_reason"].startswith("pruned after epoch") for t in pruned)
    assert all(len(t.intermediate_values) < 4 for t in pruned)
    assert all(len(t.intermediate_values) == 4 for t in complete)
    # What was pruned was behind at the epoch where it stopped: below the best completed
    # trial there (the median pruner: below the median of the completed ones, by its rule).
    for trial in pruned:
        epoch, value = max(trial.intermediate_values.items())
        at_epoch = sorted(t.intermediate_values[epoch] for t in complete)
        assert value < at_epoch[-1]
        if pruner == "median":
            assert value < statistics.median(at_epoch)
    # Hopeless learning rates are the ones it stopped: the pruned trials' lrs are lower.
    assert statistics.median(t.params["hopeless_lr"] for t in pruned) < statistics.median(
        t.params["hopeless_lr"] for t in complete
    )
    assert "pruned" in capsys.readouterr().out


def test_with_no_pruner_every_trial_trains_all_its_epochs(tmp_path):
    storage = f"sqlite:///{tmp_path / 'none.db'}"
    argv = [
        "--space", "test_hopeless_lr", "--trials", "4", "--dataset", "sample", "--epochs", "2",
        "--pruner", "none", "--sampler", "random", "--storage", storage,
        "--space-module", "tests.spaces_for_tests",
        "--checkpoint-dir", str(tmp_path / "checkpoints"),
    ]  # fmt: skip
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="test_hopeless_lr-sample", storage=storage)
    assert study.user_attrs["pruner"] == "none"
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4 and len(study.trials) == 4
    assert all(len(t.intermediate_values) == 2 for t in complete)


def test_an_epoch_budget_stops_the_study_once_its_trials_have_trained_it(tmp_path):
    """--epoch-budget 5 with 2 epochs a trial and no pruning: the third trial starts with 4
    trained, the study stops at 6, well before its 100 trials; the budget is recorded."""
    storage = f"sqlite:///{tmp_path / 'budget.db'}"
    argv = [
        "--space", "test_tiny", "--trials", "100", "--epoch-budget", "5", "--dataset", "sample",
        "--epochs", "2", "--pruner", "none", "--storage", storage,
        "--space-module", "tests.spaces_for_tests",
        "--checkpoint-dir", str(tmp_path / "checkpoints"),
    ]  # fmt: skip
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="test_tiny-sample", storage=storage)
    assert len(study.trials) == 3 and study.user_attrs["epoch_budget"] == 5
    assert sum(len(t.intermediate_values) for t in study.trials) == 6


def test_warm_start_runs_the_spaces_known_good_configs_first_and_once(tmp_path, run_here):
    space = "test_two_knobs"  # its warm starts train in a fraction of a second
    args = ["search.run", "--space", space, "--space-module", "tests.spaces_for_tests",
            "--dataset", "sample", "--epochs", "1", "--warm-start"]  # fmt: skip
    first = run_here(*args, "--trials", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"warm start: queued 2 known-good config(s) of space {space}" in first.stdout
    study = load(tmp_path / "studies.db", f"{space}-sample")
    assert [t.params for t in study.trials] == [start.params for start in spaces.warm_starts(space)]
    assert [t.user_attrs["warm_start"] for t in study.trials] == [
        start.source for start in spaces.warm_starts(space)
    ]
    again = run_here(*args, "--trials", "3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "warm start: queued 0 known-good config(s)" in again.stdout
    assert len(load(tmp_path / "studies.db", f"{space}-sample").trials) == 3  # the third sampled


def test_objectives_make_a_multi_objective_study_without_pruning(tmp_path, run_here):
    result = run_here(
        "search.run", "--space", "test_widths", "--space-module", "tests.spaces_for_tests",
        "--dataset", "sample", "--epochs", "2", "--trials", "6", "--sampler", "random",
        "--objectives", "accuracy,params", "--pruner", "none", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = load(tmp_path / "studies.db", "test_widths-sample")
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert study.metric_names == ["val_accuracy", "param_count"]
    assert study.user_attrs["pruner"] == "none"
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 6
    for trial in complete:
        assert trial.values[1] == trial.user_attrs["param_count"]
        assert trial.user_attrs["epochs_run"] == 2 and not trial.intermediate_values
    front = {t.number for t in study.best_trials}
    assert f"Pareto front: {len(front)} trial(s)" in result.stdout
    assert "-o front.yaml --pareto" in result.stdout
    exported = run_here("search.export", "--study", "test_widths-sample", "--pareto",
                        "-o", "front.yaml", cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert len(list(tmp_path.glob("front-*.yaml"))) == len(front)


def test_latency_is_measured_per_batch_on_the_trials_device(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'latency.db'}"
    argv = ["--space", "test_widths", "--space-module", "tests.spaces_for_tests", "--dataset",
            "sample", "--epochs", "1", "--trials", "3", "--objectives", "accuracy,latency",
            "--storage", storage, "--checkpoint-dir", str(tmp_path / "checkpoints")]  # fmt: skip
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="test_widths-sample", storage=storage)
    assert study.metric_names == ["val_accuracy", "latency_ms"]
    assert all(0 < t.values[1] < 10_000 for t in study.get_trials(states=(TrialState.COMPLETE,)))
    assert "latency_ms" in capsys.readouterr().out


def test_fixed_parameters_hold_in_every_trial_and_are_recorded(tmp_path):
    storage = f"sqlite:///{tmp_path / 'fixed.db'}"
    argv = ["--space", "mlp", "--dataset", "sample", "--epochs", "1", "--trials", "3",
            "--fix", "image_size=0,depth=1,taper=false", "--storage", storage, "--quiet",
            "--checkpoint-dir", str(tmp_path / "checkpoints")]  # fmt: skip
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="mlp-sample", storage=storage)
    assert study.user_attrs["fixed_params"] == {"image_size": 0, "depth": 1, "taper": False}
    for trial in study.trials:
        assert (trial.params["image_size"], trial.params["depth"], trial.params["taper"]) == (
            0, 1, False
        )  # fmt: skip
        assert config_attrs.stored(trial)["model_args"]["depth"] == 1
    assert len({t.params["width"] for t in study.trials} | {t.params["optimizer"]
                                                          for t in study.trials}) > 1  # fmt: skip
