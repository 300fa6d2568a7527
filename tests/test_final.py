"""The final selection: the top K trials retrained with S seeds each, ranked by their mean,
recorded on the study, and the winner is what search.export exports."""

import optuna
import pytest
import yaml

from search import final as final_command
from search.tuning.results import seed_selection
from tests.conftest import run_tiny_study


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """A real 4-trial study, then `search.final --top 2 --seeds 3` in this process (no pruner:
    the default's holds the first trials at epoch 1, and this needs two complete)."""
    folder = tmp_path_factory.mktemp("final")
    storage = run_tiny_study(folder, "f", epochs=2, trials=4, flags=("--pruner", "none"))
    argv = ["--study", "f", "--storage", storage, "--top", "2", "--seeds", "3"]
    assert final_command.main(argv) == 0
    return folder, storage, optuna.load_study(study_name="f", storage=storage)


def test_it_retrains_exactly_top_times_seeds_runs_with_distinct_seeds(selected):
    _, _, study = selected
    rows = seed_selection.recorded(study)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    top_two = sorted(complete, key=lambda t: t.value, reverse=True)[:2]
    assert {row["trial"] for row in rows} == {t.number for t in top_two}
    for row in rows:
        assert row["seeds"] == [0, 1, 2]  # distinct, and the same draws for every candidate
        assert len(row["val_accuracies"]) == len(row["test_accuracies"]) == 3
        assert row["val_mean"] == pytest.approx(sum(row["val_accuracies"]) / 3)
    assert sum(len(row["val_accuracies"]) for row in rows) == 2 * 3


def test_it_ranks_by_the_mean_over_seeds_not_by_the_search_value(selected):
    _, _, study = selected
    rows = seed_selection.recorded(study)
    assert [row["val_mean"] for row in rows] == sorted(
        (row["val_mean"] for row in rows), reverse=True
    )
    table = seed_selection.format_table(rows)
    assert table.startswith(seed_selection.NOTE_HEADING) and f"| 1 | {rows[0]['trial']} |" in table


def test_export_status_and_the_note_show_the_winner(selected, run_here):
    folder, storage, study = selected
    rows = seed_selection.recorded(study)
    exported = run_here("search.export", "--study", "f", "--storage", storage, "-o",
                        "w.yaml", cwd=folder)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    provenance = yaml.safe_load((folder / "w.yaml").read_text())["provenance"]
    assert provenance["trial"] == rows[0]["trial"]
    assert provenance["final_selection"]["val_mean"] == rows[0]["val_mean"]
    status = run_here("search.status", "--study", "f", "--storage", storage, cwd=folder)
    assert seed_selection.format_table(rows) in status.stdout
    import optuna_dashboard

    assert seed_selection.NOTE_HEADING in optuna_dashboard.get_note(study)


def test_a_trial_completed_since_outdates_the_selection(selected, run_here):
    """The newer trial may beat the winner: status says so, and export takes the best trial
    (the newer one here) with a line that says why."""
    folder, storage, study = selected
    later = f"sqlite:///{folder / 'later.db'}"
    optuna.copy_study(from_study_name="f", from_storage=storage, to_storage=later)
    copied = optuna.load_study(study_name="f", storage=later)
    assert seed_selection.recorded(copied) == seed_selection.recorded(
        study
    ) and not seed_selection.outdated(copied)
    best = copied.best_trial
    copied.add_trial(optuna.trial.create_trial(
        params=best.params, distributions=best.distributions, value=best.value + 0.1,
        user_attrs=best.user_attrs))  # fmt: skip
    assert seed_selection.recorded(copied) is None
    status = run_here("search.status", "--study", "f", "--storage", later, cwd=folder)
    assert (
        seed_selection.outdated(copied) in status.stdout
        and seed_selection.NOTE_HEADING not in status.stdout
    )
    before = seed_selection.complete_count(study)
    assert (
        f"chose among {before} complete trials and the study now has {before + 1}" in status.stdout
    )
    exported = run_here("search.export", "--study", "f", "--storage", later, "-o",
                        "later.yaml", cwd=folder)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr.strip() == f"search.export: {seed_selection.outdated(copied)}"
    provenance = yaml.safe_load((folder / "later.yaml").read_text())["provenance"]
    assert provenance["trial"] == len(copied.trials) - 1 and "final_selection" not in provenance


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--top", "0"], "--top must be positive, not 0"),
        (["--seeds", "0"], "--seeds must be positive, not 0"),
    ],
)
def test_refuses_k_or_s_below_one(selected, extra, message, capsys, monkeypatch):
    _, storage, _ = selected
    monkeypatch.setattr("sys.argv", ["search.final", "--study", "f", "--storage", storage, *extra])
    with pytest.raises(SystemExit) as exited:
        from search import cli

        cli.run_main(final_command.main, "search.final")
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == f"search.final: error: {message}"


def test_refuses_a_study_without_finished_trials(tmp_path, run_here):
    storage = f"sqlite:///{tmp_path / 'empty.db'}"
    empty = optuna.create_study(study_name="empty", storage=storage, direction="maximize")
    for key, value in {"space": "mlp", "dataset": "sample", "epochs": 1, "objectives":
                       "accuracy", "trials": 1, "sampler": "tpe", "pruner": "none", "seed": 0,
                       "space_module": None, "heartbeat_interval": 60,
                       "grace_period": 180}.items():  # fmt: skip
        empty.set_user_attr(key, value)
    result = run_here("search.final", "--study", "empty", "--storage", storage, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "search.final: error: study empty has no complete trial yet; run trials first"
    )
