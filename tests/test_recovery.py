"""A worker's recovery (search/tuning/execution/recovery.py) on real SQLite studies, fast: the
outage's lines, backoff and patience on a clock the test turns; the trial in hand re-queued,
dropped when another process ended it, or left when none is in hand. The fleet tests
(tests/test_worker.py, test_resume.py, test_chaos.py) run the same with real processes."""

import logging
import random

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

import spaces
from registry import RunFailure, files
from search.tuning.execution import recovery
from search.tuning.records import keys

# what SQLAlchemy raises when the database goes away mid-query
LOST = sqlalchemy.exc.OperationalError(
    "SELECT 1", {}, ConnectionError("server closed the connection")
)


@pytest.fixture(autouse=True)
def heard(monkeypatch):
    """Our lines reach pytest's caplog: a command run earlier in this process
    (cli.configure_logging) gave our loggers their own handler and stopped their propagation."""
    monkeypatch.setattr(logging.getLogger("search"), "propagate", True)


class Clock:
    """time.monotonic and time.sleep for recovery.py: a sleep moves the clock on, at once."""

    def __init__(self):
        self.now, self.pauses = 1000.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    turned = Clock()
    monkeypatch.setattr(recovery.time, "monotonic", turned.monotonic)
    monkeypatch.setattr(recovery.time, "sleep", turned.sleep)
    monkeypatch.setattr(recovery.random, "uniform", lambda low, high: high)  # no jitter
    return turned


def test_an_outage_is_said_once_backs_off_and_ends_with_one_line(clock, caplog):
    """Looks 5, 10, 20, 30, 30 s apart (POLL_SECONDS doubling, capped at 30); one line when it
    begins (how long it will wait), one when it is over, none between."""
    outage = recovery.Outage(patience=0)
    with caplog.at_level(logging.INFO, logger="search.worker"):
        for _ in range(5):
            outage.wait(LOST)
        outage.over()
    assert clock.pauses == [5, 10, 20, 30, 30]
    assert [r.getMessage() for r in caplog.records] == [
        "lost the storage (server closed the connection); waiting for as long as it takes for "
        "it (--storage-patience)",
        "the storage is back after 95 s",
    ]
    assert outage.began is None  # the next outage begins its own count
    outage.wait(LOST)
    assert clock.pauses[-1] == 5


def test_an_outage_past_its_patience_ends_the_worker_with_one_line(clock, caplog):
    """--storage-patience 12: looks 5 and then 7 s apart (no later than the patience), then
    the line that ends the worker, naming how long and the error."""
    outage = recovery.Outage(patience=12)
    with caplog.at_level(logging.WARNING, logger="search.worker"):
        outage.wait(LOST)
        outage.wait(LOST)
        with pytest.raises(RunFailure) as ended:
            outage.wait(LOST)
    assert clock.pauses == [5, 7]
    assert str(ended.value) == (
        "lost the storage for good: nothing for 12 s (--storage-patience 12): server closed "
        "the connection"
    )
    assert "waiting up to 12 s for it" in caplog.records[0].getMessage()


def test_a_read_waits_out_an_outage_and_raises_what_is_not_one(clock):
    answers = iter([LOST, LOST, "the settings"])

    def read():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    outage = recovery.Outage(patience=0)
    assert recovery.patiently(read, outage) == "the settings"
    assert clock.pauses == [5, 10] and outage.began is None
    with pytest.raises(KeyError):
        recovery.patiently(lambda: {}["not an outage"], outage)


class Runner:
    """What recovery reads of a worker's objective: the number of the trial in hand."""

    def __init__(self, in_hand: int | None):
        self.in_hand = in_hand


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'recovery.db'}", direction="maximize"
    )


def running_trial(study: optuna.Study, epochs: int = 2) -> optuna.Trial:
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    for epoch in range(1, epochs + 1):
        trial.report(0.1 * epoch, epoch)
    return trial


def test_a_trial_cut_off_is_failed_with_its_reason_and_re_queued(study, caplog):
    """Still RUNNING (the outage kept Optuna from recording its end): failed now, with the
    reason, and queued again to resume; said in a line."""
    trial = running_trial(study)
    runner = Runner(trial.number)
    with caplog.at_level(logging.INFO, logger="search.worker"):
        assert recovery.requeue(study, runner, "cut off by an outage")
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs[keys.FAIL_REASON] == "cut off by an outage"
    assert trials[1].state == TrialState.WAITING
    assert spaces.lineage(trials[1]) == [0]
    assert runner.in_hand is None
    assert caplog.records[-1].getMessage() == ("trial 0: cut off by an outage; re-queued to resume")


def test_nothing_in_hand_is_nothing_to_re_queue_or_drop(study):
    running_trial(study)
    assert not recovery.requeue(study, Runner(None), "interrupted")
    assert recovery.taken_away(study, Runner(None)) is None
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]


def test_a_trial_the_heartbeats_failed_first_is_not_failed_again(study):
    """Failed by another process with its own reason, and re-run by it: this worker's requeue
    leaves both as they are."""
    trial = running_trial(study)
    study._storage.set_trial_user_attr(trial._trial_id, keys.FAIL_REASON, "stale heartbeat")
    study.tell(trial, state=TrialState.FAIL)
    study.enqueue_trial({"x": 0.5}, user_attrs={spaces.RETRY_HISTORY: [0]})
    assert not recovery.requeue(study, Runner(0), "cut off by an outage")
    trials = study.get_trials()
    assert trials[0].user_attrs[keys.FAIL_REASON] == "stale heartbeat"
    assert len(trials) == 2


def test_a_full_disk_re_queues_the_trial_and_says_when_it_resumes(study):
    trial = running_trial(study)
    error = files.OutOfSpace("no space left on device")
    told = recovery.out_of_space(study, Runner(trial.number), error)
    assert str(told) == "no space left on device (trial 0 resumes then)"
    assert study.get_trials()[0].user_attrs[keys.FAIL_REASON] == (
        "cut off: no space left for its checkpoint"
    )
    assert recovery.out_of_space(study, Runner(None), error) is error


def test_an_interrupt_re_queues_the_trial_and_a_lost_storage_is_said_not_raised(study, caplog):
    trial = running_trial(study)
    recovery.interrupted(study, Runner(trial.number))
    assert study.get_trials()[0].user_attrs[keys.FAIL_REASON] == "was interrupted"

    def no_answer(**_):  # its storage stopped answering
        raise LOST

    gone = optuna.load_study(study_name=study.study_name, storage=study._storage)
    gone.get_trials = no_answer
    with caplog.at_level(logging.WARNING, logger="search.worker"):
        recovery.interrupted(gone, Runner(1))
    assert caplog.records[-1].getMessage() == (
        "could not re-queue trial 1: server closed the connection"
    )


def test_a_trial_another_process_ended_is_dropped_with_its_reason(study, clock, caplog):
    """Optuna's tell refused (the trial was failed elsewhere): the worker drops it, says why,
    and goes on; a race for a queued trial is said quietly; an outage is waited out; anything
    else is raised."""
    trial = running_trial(study)
    study._storage.set_trial_user_attr(trial._trial_id, keys.FAIL_REASON, "stale heartbeat")
    study.tell(trial, state=TrialState.FAIL)
    refused = ValueError("Cannot tell a FAIL trial.")
    runner = Runner(trial.number)
    outage = recovery.Outage(patience=0)
    with caplog.at_level(logging.DEBUG, logger="search.worker"):
        recovery.ride_out(study, runner, refused, outage)
        assert runner.in_hand is None
        assert caplog.records[-1].levelno == logging.WARNING
        assert caplog.records[-1].getMessage() == (
            "trial 0 was marked FAIL by another process while this worker ran it (stale "
            "heartbeat); dropped it, and going on"
        )
        recovery.ride_out(study, runner, refused, outage)  # nothing in hand: a race
        assert caplog.records[-1].levelno == logging.DEBUG
        assert caplog.records[-1].getMessage() == "taken first: Cannot tell a FAIL trial."
    recovery.ride_out(study, runner, LOST, outage)
    assert outage.began is not None and clock.pauses == [5]
    with pytest.raises(ZeroDivisionError):
        recovery.ride_out(study, runner, ZeroDivisionError("the trial's own"), outage)
    live = running_trial(study)
    assert recovery.taken_away(study, Runner(live.number)) is None  # still its own


def test_the_jitter_spreads_a_look_over_its_second_half(monkeypatch):
    """Each pause is its backoff times a uniform draw from [0.5, 1): hundreds of workers do
    not knock at the same instant."""
    pauses = []
    monkeypatch.setattr(recovery.time, "sleep", pauses.append)
    random.seed(0)
    outage = recovery.Outage(patience=0)
    for _ in range(50):
        outage.began = None
        outage.wait(LOST)
    assert all(2.5 <= pause <= 5 for pause in pauses) and max(pauses) - min(pauses) > 1


def test_the_trial_in_hand_is_held_while_it_runs_and_kept_only_when_cut_off(study):
    """While run() runs, the trial is in hand; cleared when it returns or fails on its own;
    kept when an outage or a signal cuts it off (the loop re-queues it then)."""
    trial = running_trial(study)
    runner = Runner(None)
    seen = []
    assert recovery.in_hand(runner, trial, lambda: seen.append(runner.in_hand) or 0.5) == 0.5
    assert seen == [trial.number] and runner.in_hand is None
    with pytest.raises(ZeroDivisionError):
        recovery.in_hand(runner, trial, lambda: 1 / 0)
    assert runner.in_hand is None

    def cut_off():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        recovery.in_hand(runner, trial, cut_off)
    assert runner.in_hand == trial.number


def test_a_trial_ended_elsewhere_without_a_reason_says_so(study):
    trial = running_trial(study)
    study.tell(trial, state=TrialState.FAIL)
    assert recovery.taken_away(study, Runner(trial.number)) == (
        "trial 0 was marked FAIL by another process while this worker ran it (no reason "
        "recorded); dropped it, and going on"
    )


def test_a_full_disk_re_queues_quietly_since_the_worker_s_own_line_says_it(study, caplog):
    trial = running_trial(study)
    with caplog.at_level(logging.INFO, logger="search.worker"):
        recovery.out_of_space(study, Runner(trial.number), files.OutOfSpace("disk full"))
    assert not caplog.records


def test_a_study_deleted_under_a_worker_stops_it_with_one_line(study, clock, caplog):
    """An error that is no outage and no race, on a study someone deleted: one line naming
    it. An outage's error is the one the wait line names."""
    with caplog.at_level(logging.WARNING, logger="search.worker"):
        recovery.ride_out(study, Runner(None), LOST, recovery.Outage(patience=0))
    assert "lost the storage (server closed the connection)" in caplog.records[-1].getMessage()
    optuna.delete_study(study_name=study.study_name, storage=study._storage)
    with pytest.raises(RunFailure) as stopped:
        recovery.ride_out(study, Runner(None), KeyError(0), recovery.Outage(patience=0))
    assert str(stopped.value) == (
        f"study '{study.study_name}' was deleted while this worker ran it; stopped"
    )
