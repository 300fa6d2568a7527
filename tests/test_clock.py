"""Optuna's naive local times across daylight-saving changes (issue 44's clocks): a trial's
seconds, the report's timeline and search.status's running time are real elapsed time, never
negative, on a host in New York, where 2026's clocks fall back at 2:00 on 1 November (1:00 to
1:59 twice) and spring forward at 2:00 on 8 March."""

import datetime
import time

import optuna
import pytest
from optuna.trial import TrialState

from search.tuning.records import clock
from search.tuning.results import progress, study_report

FALL_START, FALL_END = datetime.datetime(2026, 11, 1, 1, 50), datetime.datetime(2026, 11, 1, 1, 10)
SPRING_START, SPRING_END = (
    datetime.datetime(2026, 3, 8, 1, 50),
    datetime.datetime(2026, 3, 8, 3, 10),
)


@pytest.fixture
def new_york(monkeypatch):
    # a POSIX rule, not a zoneinfo name: the C library needs no time-zone database for it
    monkeypatch.setenv("TZ", "EST5EDT,M3.2.0,M11.1.0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("start", "end", "minutes"), [
    (FALL_START, FALL_END, 20),  # 1:50 EDT to 1:10 EST, read as -40 minutes
    (SPRING_START, SPRING_END, 20),  # 1:50 EST to 3:10 EDT, read as 80 minutes
    (datetime.datetime(2026, 7, 1, 9, 0), datetime.datetime(2026, 7, 1, 10, 30), 90),
    (datetime.datetime(2026, 11, 1, 9, 0, tzinfo=datetime.UTC),
     datetime.datetime(2026, 11, 1, 9, 5, tzinfo=datetime.UTC), 5),  # aware: as they are
])  # fmt: skip
def test_elapsed_time_across_a_daylight_saving_change_is_real_time(new_york, start, end, minutes):
    assert clock.elapsed(start, end) == datetime.timedelta(minutes=minutes)


def trial(state, start, end, worker, value=None) -> optuna.trial.FrozenTrial:
    """A trial as Optuna records one (create_trial takes no times)."""
    return optuna.trial.FrozenTrial(
        number=0, trial_id=0, state=state, value=value, datetime_start=start,
        datetime_complete=end, params={}, distributions={}, user_attrs={"worker": worker},
        system_attrs={}, intermediate_values={1: value} if value is not None else {},
    )  # fmt: skip


def test_a_trial_across_the_autumn_change_shows_its_real_seconds_in_status_and_report(
    new_york, tmp_path
):
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'dst.db'}", direction="maximize")
    found.add_trial(trial(TrialState.COMPLETE, FALL_START, FALL_END, "a:1", value=0.5))
    done = found.trials[0]
    assert done.duration == -datetime.timedelta(minutes=40)  # as Optuna reads its own times
    assert clock.seconds(done) == study_report.attribute_of(done, "seconds") == 1200
    bars = study_report.timeline(found, None).data
    assert [bar.x for bar in bars] == [(1200 * 1000,)]  # drawn forward, 20 minutes long
    found.add_trial(trial(TrialState.RUNNING, FALL_START, None, "b:2"))
    status = progress.describe_status(found, FALL_END, target=2)
    assert "running trial 1 on b:2 (?): 1200 s, 0 epoch(s) reported" in status
