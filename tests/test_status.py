import optuna

from search.tuning.store import storage
from tests.conftest import record_settings


def test_status_counts_states_and_shows_running_trials_with_their_worker(tmp_path, run_here):
    url = f"sqlite:///{tmp_path / 'status.db'}"
    study = optuna.create_study(study_name="s", storage=storage.open_storage(url),
                                direction="maximize")  # fmt: skip
    record_settings(study, trials=5)
    for value in (0.5, 0.7):
        study.tell(study.ask(), value)
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    running = study.ask()
    running.set_user_attr("worker", "hostA:123 gpu 2")
    running.set_user_attr("device", "NVIDIA H100")
    running.report(0.3, 1)

    result = run_here("search.status", "--study", "s", "--storage", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "study s: 3/5 finished; 1 running, 2 complete, 1 pruned, 0 fail, 0 waiting"
    assert lines[1] == "best val_accuracy 0.7000 (trial 1)"
    assert lines[2].startswith("  running trial 3 on hostA:123 gpu 2 (NVIDIA H100): ")
    assert lines[2].endswith(", 1 epoch(s) reported")
