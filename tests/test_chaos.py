"""The chaos soak (search/bench/chaos.py): a real fleet (PostgreSQL behind the proxy, one
search.run and seven search.worker processes) for a minute of seeded faults, then its
guarantees checked; and the check of re-runs that trained an epoch twice, on trials made by
hand, where the answer is known."""

import json

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

import spaces
from search.bench import chaos
from search.tuning.records import keys
from tests import postgres
from tests.conftest import run_command


def made(number_epochs: int, state=TrialState.FAIL, **attrs) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=state, value=0.5 if state == TrialState.COMPLETE else None, params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)}, user_attrs=attrs,
        intermediate_values={e: 0.1 * e for e in range(1, number_epochs + 1)},
    )  # fmt: skip


def test_a_re_run_that_resumes_before_its_predecessor_s_last_epoch_trained_it_twice():
    """Trial 0 reported 3 epochs and was cut off; its re-run 1 resumed after epoch 1 (2
    epochs again); trial 2 reported 2, its re-run 3 resumed after 2 (none again); trial 4
    reported 2, and its checkpoint was truncated, so its re-run 5 began again (2 epochs
    lost, counted apart); re-run 6 of trial 0 never started training."""
    study = optuna.create_study()
    worker = {keys.WORKER: "host:1"}
    for trial in [
        made(3, **worker),
        made(3, TrialState.COMPLETE, **{spaces.RETRY_HISTORY: [0], keys.RESUMED_AFTER_EPOCH: 1},
             **worker),
        made(2, **worker),
        made(3, TrialState.COMPLETE, **{spaces.RETRY_HISTORY: [2], keys.RESUMED_AFTER_EPOCH: 2},
             **worker),
        made(2, **worker),
        made(3, TrialState.COMPLETE, **{spaces.RETRY_HISTORY: [4]}, **worker),
        made(0, **{spaces.RETRY_HISTORY: [0], keys.NOT_NEEDED: True}),
    ]:  # fmt: skip
        study.add_trial(trial)
    twice, lost = chaos.twice_trained(study.get_trials(), {4}, spaces, keys)
    assert twice == [(1, 2)] and lost == 2


def test_a_minute_of_faults_leaves_every_guarantee_standing(tmp_path):
    """Kills, freezes past the grace period, PostgreSQL and proxy restarts, a full checkpoint
    disk and truncated checkpoints, at a fault every 4 s on average, a fixed seed, 20 trials
    (the fleet finishes them as the minute ends: 10 faults here; 30 ran on past it, to 94 s
    of the suite's 10 minutes): exactly the study's trials finished, nothing left running or
    queued, no epoch trained twice, no traceback, and every process's last exit 0."""
    out = tmp_path / "chaos.json"
    result = run_command(
        "search.bench", "--sections", "chaos", "--chaos-storage", postgres.URL, "--chaos-minutes",
        "1", "--chaos-trials", "20", "--chaos-epochs", "2", "--chaos-workers", "8",
        "--chaos-fault-seconds", "4", "--chaos-hang-minutes", "5", "--chaos-seed", "1",
        "--json", str(out), cwd=tmp_path, timeout=900,
    )  # fmt: skip
    soak = json.loads(out.read_text())["chaos"]
    assert result.returncode == 0, (soak["violations"], soak["events"], result.stderr[-2000:])
    assert soak["violations"] == [] and soak["finished"] == 20
    assert soak["faults_total"] >= 4, soak["events"]
    assert "0 violation(s)" in result.stdout
