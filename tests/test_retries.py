"""Re-runs of failed trials and the checkpoints they resume from, on a real SQLite study."""

import datetime
import logging
import sqlite3

import optuna
import pytest
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

import spaces
from search.tuning.execution import retries
from search.tuning.execution.checkpoints import TrialCheckpoints
from search.tuning.records import keys
from search.tuning.store import storage
from search.tuning.strategies import continuation


def new_study(tmp_path) -> optuna.Study:
    opened = storage.open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    return optuna.create_study(study_name="s", storage=opened, direction="maximize")


def test_a_cut_off_trial_is_re_queued_with_its_history_and_nothing_of_its_worker(tmp_path):
    study = new_study(tmp_path)
    first = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1.0)})
    first.set_user_attr("worker", "host:1")
    study.tell(first, state=TrialState.FAIL)
    assert retries.retry_cut_off(study, first.number)
    queued = study.trials[-1]
    assert queued.state == TrialState.WAITING and queued.params == first.params
    assert queued.user_attrs == {spaces.RETRY_HISTORY: [0]}
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(queued) == 0
    running = study.ask()  # the re-run, cut off in turn: its history grows
    study.tell(running, state=TrialState.FAIL)
    assert retries.retry_cut_off(study, running.number)
    assert study.trials[-1].user_attrs[spaces.RETRY_HISTORY] == [0, 1]


def test_a_trial_still_running_is_left_to_the_heartbeats(tmp_path):
    study = new_study(tmp_path)
    trial = study.ask()
    assert not retries.retry_cut_off(study, trial.number)
    assert len(study.trials) == 1


def test_re_runs_stop_after_max_retries(tmp_path):
    study = new_study(tmp_path)
    queued = []
    for _ in range(retries.MAX_RETRIES + 1):
        trial = study.ask()  # the first, then each re-run of it
        study.tell(trial, state=TrialState.FAIL)
        queued.append(retries.retry_cut_off(study, trial.number))
    assert queued == [True] * retries.MAX_RETRIES + [False]  # the last re-run is queued too
    assert [t.state for t in study.trials] == [TrialState.FAIL] * (retries.MAX_RETRIES + 1)
    assert study.trials[-1].user_attrs[spaces.RETRY_HISTORY] == list(range(retries.MAX_RETRIES))


def test_checkpoints_of_finished_trials_go_and_those_still_needed_stay(tmp_path):
    study = new_study(tmp_path)
    checkpoints = TrialCheckpoints(tmp_path / "checkpoints", "A study/with odd:Name", "c0ffee01",
                                   keep=1)  # fmt: skip
    assert checkpoints.folder.name == "A_study_with_odd_Name-c0ffee01"
    older = TrialCheckpoints(tmp_path / "checkpoints", "A study/with odd:Name")
    assert older.folder.name == "A_study_with_odd_Name"  # a study made before keys

    def trial_with_checkpoint(state, value=None):
        trial = study.ask()
        checkpoints.save(trial.number, {"epoch": 1, "weights": torch.zeros(2)})
        if state != TrialState.RUNNING:
            study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        return trial.number

    best = trial_with_checkpoint(TrialState.COMPLETE, 0.9)
    worse = trial_with_checkpoint(TrialState.COMPLETE, 0.5)
    pruned = trial_with_checkpoint(TrialState.PRUNED)
    running = trial_with_checkpoint(TrialState.RUNNING)
    resumed_and_done = trial_with_checkpoint(TrialState.FAIL)
    retries.retry_cut_off(study, resumed_and_done)
    done = study.ask()
    study.tell(done, 0.1)
    waiting_for_a_rerun = trial_with_checkpoint(TrialState.FAIL)
    rerun_not_needed = trial_with_checkpoint(TrialState.FAIL)
    retries.retry_cut_off(study, rerun_not_needed)
    surplus = study.ask()  # the re-run, which found the target met (claim_or_give_up)
    surplus.set_user_attr("not_needed", True)
    study.tell(surplus, state=TrialState.FAIL)
    (checkpoints.folder / f".trial-{pruned}.pt.abc.tmp").write_bytes(b"cut short by a kill")
    (checkpoints.folder / "notes.txt").write_text("a user's file: not a checkpoint")

    checkpoints.remove_finished(study, study.trials[-1])
    left = sorted(p.name for p in checkpoints.folder.iterdir())
    assert left == sorted(
        ["notes.txt", *(f"trial-{n}.pt" for n in (best, running, waiting_for_a_rerun))]
    )
    assert worse != best


def test_a_cut_off_continuation_keeps_the_paused_trials_checkpoint_until_its_re_run_ends(
    tmp_path,
):
    """The chaos soak's "trial 32: 1 epoch(s) trained twice": a continuation cut off before it
    saved an epoch of its own leaves its re-run only the paused trial's checkpoint to resume
    from. Another worker's clean-up between the cut-off and the re-run's queueing removed it
    (the paused trial is taken over, so no longer among the paused ones kept), and the re-run
    trained the paused trial's epochs again from scratch. It stays until the re-run ends."""
    study = new_study(tmp_path)
    checkpoints = TrialCheckpoints(tmp_path / "checkpoints", "s")
    paused = study.ask()
    checkpoints.save(paused.number, {"epoch": 1, "weights": torch.zeros(2)})
    paused.set_user_attr(keys.PAUSED, 1)
    study.tell(paused, state=TrialState.PRUNED)
    continuation.queue_continuation(study, study.trials[paused.number])
    cut_off = study.ask()  # takes the queued continuation; killed before its epoch 2 was saved
    assert cut_off.user_attrs[keys.CONTINUES] == [paused.number]
    study.tell(cut_off, state=TrialState.FAIL)
    finished = study.ask()  # another worker's trial ends, and it cleans up
    study.tell(finished, 0.5)

    checkpoints.remove_finished(study, study.trials[finished.number])
    assert checkpoints.path(paused.number).exists()
    assert retries.retry_cut_off(study, cut_off.number)
    rerun = study.ask()
    assert spaces.lineage(rerun) == [paused.number, cut_off.number]
    checkpoints.remove_finished(study, study.trials[finished.number])
    assert checkpoints.path(paused.number).exists()
    checkpoints.save(rerun.number, {"epoch": 2, "weights": torch.zeros(2)})
    study.tell(rerun, 0.7)  # it resumed from there and finished: nothing will again
    checkpoints.remove_finished(study, study.trials[rerun.number])
    assert list(checkpoints.folder.iterdir()) == []  # --keep-checkpoints 0, the default


def test_a_run_failed_after_its_last_allowed_re_run_leaves_no_checkpoint(tmp_path):
    """Nothing re-runs it: its checkpoint and those of the runs before it go; one re-run
    short of the last, they all stay."""
    study = new_study(tmp_path)
    checkpoints = TrialCheckpoints(tmp_path / "checkpoints", "s")
    for _ in range(retries.MAX_RETRIES + 1):
        trial = study.ask()  # the first, then each re-run of it
        checkpoints.save(trial.number, {"epoch": 1, "weights": torch.zeros(2)})
        study.tell(trial, state=TrialState.FAIL)
        if len(study.trials) == retries.MAX_RETRIES:  # one re-run left to run
            checkpoints.remove_finished(study, study.trials[-1])
            assert len(list(checkpoints.folder.iterdir())) == retries.MAX_RETRIES
        retries.retry_cut_off(study, trial.number)
    study.tell(study.ask(), 0.5)  # another trial ends; its worker cleans up
    checkpoints.remove_finished(study, study.trials[-1])
    assert list(checkpoints.folder.iterdir()) == []


def test_a_re_run_resumes_from_the_newest_checkpoint_of_its_lineage_that_fits(tmp_path):
    """Newest first: a run that saved nothing, one whose file cannot be read, one of another
    config and one with no config are passed over for the oldest, whose state comes back with
    its history in this version's terms; a run with none that fits starts afresh."""
    from search.training import config

    study = new_study(tmp_path)
    checkpoints = TrialCheckpoints(tmp_path / "checkpoints", "s")
    own = config.TrialConfig(model="mlp", lr=0.05)
    history = [{"epoch": 1, "eval_accuracy": 0.3}]  # as an earlier version named it
    lineage = []
    for state in (
        {"epoch": 1, "config": own.to_dict(), "history": history, "weights": torch.ones(2)},
        {"epoch": 1, "config": own.replace(lr=0.2).to_dict(), "history": history},
        {"epoch": 1, "history": history},  # no config: not known to fit
        None,  # a file torch cannot read
        "absent",  # the newest run was cut off before it saved an epoch
    ):  # fmt: skip
        trial = study.ask()
        if state is None:
            checkpoints.path(trial.number).write_bytes(b"cut short")
        elif state != "absent":
            checkpoints.save(trial.number, state)
        study.tell(trial, state=TrialState.FAIL)
        lineage.append(trial.number)
    study.enqueue_trial({}, user_attrs={spaces.RETRY_HISTORY: lineage})
    rerun = study.ask()
    loaded = checkpoints.latest(rerun, own)
    assert torch.equal(loaded["weights"], torch.ones(2))
    assert loaded["history"] == [{"epoch": 1, "val_accuracy": 0.3}]  # in this version's terms
    assert checkpoints.latest(rerun, own.replace(lr=0.3)) is None


def test_a_re_run_still_queued_when_the_study_is_done_ends_as_not_needed(tmp_path):
    """A trial cut off, a fresh one started before its re-run was queued, and the target
    reached by the fresh one: every worker now hears DONE, and the re-run would stay WAITING
    for ever (a leftover the proxy-outage test once found). The first worker to hear DONE
    ends it, untrained, as not needed; a queued trial another worker has just taken is left
    to that worker."""
    from search.tuning.strategies.scheduler import Next, Scheduler

    study = new_study(tmp_path)
    study.tell(study.ask(), 0.5)
    cut_off, fresh = study.ask(), study.ask()
    study.tell(cut_off, state=TrialState.FAIL)
    assert retries.retry_cut_off(study, cut_off.number)
    study.enqueue_trial({})
    taken = study.trials[-1]  # a worker's ask takes it as this does
    assert study._storage.set_trial_state_values(taken._trial_id, TrialState.RUNNING)
    study.tell(fresh, 0.7)  # the target of 2 reached
    assert Scheduler(target=2).next(study) is Next.DONE
    rerun = study.trials[3]
    assert rerun.user_attrs[spaces.RETRY_HISTORY] == [1]
    assert rerun.state == TrialState.FAIL and rerun.user_attrs["not_needed"] is True
    assert rerun.user_attrs["fail_reason"] == "not needed: the study holds what it is run for"
    assert study.trials[4].state == TrialState.RUNNING  # another worker's: untouched
    assert not study.get_trials(states=(TrialState.WAITING,))


def test_a_trial_the_heartbeats_re_queued_first_is_not_queued_again(tmp_path):
    """A worker that lost the storage finds, once it is back, that the heartbeats already
    failed its trial and queued the re-run: it queues no second one."""
    study = new_study(tmp_path)
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    assert retries.retry(study, study.trials[0])  # the heartbeats' re-run
    assert not retries.retry_cut_off(study, trial.number)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1
    rerun = study.ask()  # that re-run, cut off in its turn: the heartbeats first again
    study.tell(rerun, state=TrialState.FAIL)
    assert retries.retry(study, study.trials[rerun.number])
    assert not retries.retry_cut_off(study, rerun.number)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_a_re_run_carries_the_paused_trials_it_continues_and_its_place_in_a_population(tmp_path):
    study = new_study(tmp_path)
    trial = study.ask()
    for key, value in (("continues", [4, 7]), ("pbt", {"generation": 2, "member": 1}),
                       ("worker", "host:1"), ("fail_reason", "cut off")):  # fmt: skip
        trial.set_user_attr(key, value)
    study.tell(trial, state=TrialState.FAIL)
    assert retries.retry_cut_off(study, trial.number)
    assert study.trials[-1].user_attrs == {
        spaces.RETRY_HISTORY: [0],
        "continues": [4, 7],
        "pbt": {"generation": 2, "member": 1},
    }


def test_a_read_before_the_trial_loop_waits_out_a_lost_storage_and_says_so(caplog, monkeypatch):
    """What a worker reads as it starts (its study's settings, its count of finished trials),
    when its scheduler restarted it while the database or the proxy was away: the outage's
    lines and waits, then the value; an error that is no outage goes through at once."""
    import sqlalchemy

    from search.tuning.execution import recovery

    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
    answers = iter([lost, lost, 42])

    def read():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(recovery, "POLL_SECONDS", 0.01)  # the back-off's first step
    # the commands' logging (cli.configure_logging, run in this process by earlier tests)
    # keeps our lines from the root logger, where caplog listens
    monkeypatch.setattr(logging.getLogger("search"), "propagate", True)
    with caplog.at_level("INFO", logger="search"):
        assert recovery.patiently(read, recovery.Outage(patience=60)) == 42
    said = [record.getMessage() for record in caplog.records]
    assert sum("lost the storage (connection refused)" in line for line in said) == 1
    assert sum("the storage is back after" in line for line in said) == 1
    with pytest.raises(KeyError):
        recovery.patiently(lambda: {}["no outage"], recovery.Outage(patience=60))


def test_a_proxy_lost_at_a_command_s_boundary_is_one_line():
    """A gRPC error that reaches a command (the proxy went away between its checks and its
    reads) is described as the storage's, not left to a traceback."""
    import grpc

    from search.tuning.store import faults
    from tests.test_faults import Status

    unavailable = Status(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    line = faults.describe_fault(unavailable, "grpc://localhost:13000")
    assert str(line) == (
        "cannot reach storage grpc://localhost:13000: gRPC UNAVAILABLE: failed to connect to "
        "all addresses (is search.proxy running there, and its database up?)"
    )
    assert line.exit_code == 1


def test_an_orphan_is_judged_by_how_long_this_worker_saw_it_not_by_another_host_s_clock(
    tmp_path,
):
    """A trial another host has just asked, its start stamped by that host's clock ten
    minutes behind this one's, and its worker not yet named: the old rule (now minus its
    start, past the grace period) failed it at once as an orphan. This worker now counts
    from when it first saw the trial unnamed, on its own monotonic clock."""
    from search.tuning.execution import recovery

    study = new_study(tmp_path)
    behind = datetime.datetime.now() - datetime.timedelta(minutes=10)
    named = study.ask()  # under way on this host, its worker named, first in the scan
    named.set_user_attr("worker", "here:0")
    study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING))
    with sqlite3.connect(tmp_path / "studies.db") as connection:  # as that host's clock wrote it
        connection.execute("UPDATE trials SET datetime_start = ? WHERE trial_id = ?",
                           (behind.isoformat(" "), study.trials[1]._trial_id))  # fmt: skip
    assert study.trials[1].datetime_start == behind
    recovery.fail_orphans(study, grace_seconds=60)
    assert study.trials[1].state == TrialState.RUNNING
    study.ask()  # another unnamed one, first seen by the next look
    recovery.fail_orphans(study, grace_seconds=1e-9)  # trial 1 seen unnamed that long
    states = [t.state for t in study.trials]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.RUNNING]
    assert study.trials[1].user_attrs["fail_reason"].startswith("orphaned")


def test_an_orphan_is_failed_even_behind_a_trial_first_seen_unnamed_now(tmp_path):
    """Trial 0 was queued and trial 1 left RUNNING unnamed when this worker first looked; then
    a worker popped trial 0 and has not named itself yet. The next look finds trial 0 young
    (first seen now) ahead of trial 1, an orphan past its grace: the young one is passed over
    and the scan goes on to fail trial 1 (a scan that stopped at the young one left it)."""
    from search.tuning.execution import recovery

    study = new_study(tmp_path)
    study.enqueue_trial({})
    study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING))
    recovery.fail_orphans(study, grace_seconds=60)  # trial 1 watched from now
    assert study.ask().number == 0  # popped, RUNNING, its worker not named yet
    recovery.fail_orphans(study, grace_seconds=1e-9)
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.FAIL]
