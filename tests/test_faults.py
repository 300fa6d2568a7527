"""How a storage's faults are read (search/tuning/store/faults.py): the errors themselves made by
the real SQLite, the real PostgreSQL and Optuna, each described in its one line or told
apart as a race; written for the survivors of a mutation run that only commands' tests
reached (TESTING.md)."""

import sqlite3

import grpc
import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from registry import RunFailure, UsageError
from search.tuning.store import faults
from tests import postgres


class Status(grpc.RpcError):
    """A gRPC error as a channel raises it (the proxy's client sees these), of one status."""

    def __init__(self, status: grpc.StatusCode, details: str):
        self.status, self.text = status, details

    def code(self):
        return self.status

    def details(self):
        return self.text


def raised_by(action) -> BaseException:
    with pytest.raises(Exception) as raised:
        action()
    return raised.value


def test_a_trial_another_process_ended_is_a_race_not_an_outage(tmp_path):
    """Optuna's tell of a trial already failed, the storage's UpdateFinishedTrialError (also
    behind another error), and the proxy's FAILED_PRECONDITION say another process ended the
    trial; the proxy's UNAVAILABLE and other errors, even with a like message, do not."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'race.db'}")
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    told = raised_by(lambda: study.tell(trial, 0.5))
    assert str(told) == "Cannot tell a FAIL trial." and faults.finished_elsewhere(told)
    storage = study._storage
    ended = raised_by(lambda: storage.set_trial_state_values(trial._trial_id, TrialState.FAIL))
    assert isinstance(ended, UpdateFinishedTrialError) and faults.finished_elsewhere(ended)
    try:
        try:
            raise ended
        except UpdateFinishedTrialError:
            raise RuntimeError("recording the end failed")  # noqa: B904  (as a caller wraps it)
    except RuntimeError as wrapped:
        assert faults.finished_elsewhere(wrapped)
    assert faults.finished_elsewhere(Status(grpc.StatusCode.FAILED_PRECONDITION, "ended"))
    assert not faults.finished_elsewhere(Status(grpc.StatusCode.UNAVAILABLE, "down"))
    assert not faults.finished_elsewhere(grpc.RpcError("no status"))  # gRPC's bare base class
    assert not faults.finished_elsewhere(ValueError("cannot tell a FAIL trial."))
    assert not faults.finished_elsewhere(RuntimeError("Cannot tell a FAIL trial."))
    assert not faults.finished_elsewhere(ValueError("a value out of range"))


def test_a_first_line_is_the_driver_s_the_proxy_s_status_or_the_error_s_kind():
    assert faults.first_line(Status(grpc.StatusCode.UNAVAILABLE, "no route")) == (
        "gRPC UNAVAILABLE: no route"
    )
    assert faults.first_line(grpc.RpcError("without a status")) == "without a status"
    assert faults.first_line(ValueError("first\nsecond")) == "first"
    assert faults.first_line(ValueError()) == "ValueError"


def sqlite_fault(path, action) -> BaseException:
    """The error Optuna's RDBStorage raises on the SQLite file at `path` doing `action`."""
    return raised_by(lambda: action(optuna.storages.RDBStorage(f"sqlite:///{path}?timeout=0.1")))


def test_each_sqlite_fault_is_its_line_and_its_kind(tmp_path):
    """A file another process locks (exit 1, the wait it gave), a file that is not a
    database (usage), and a message we have no line for, as SQLite says it."""
    locked = tmp_path / "locked.db"
    optuna.create_study(storage=f"sqlite:///{locked}", study_name="s")
    holder = sqlite3.connect(locked, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        error = sqlite_fault(locked, lambda s: optuna.create_study(storage=s, study_name="t"))
    finally:
        holder.close()
    url = f"sqlite:///{locked}?timeout=0.1"
    line = faults.describe_fault(error, url)
    assert isinstance(line, RunFailure) and str(line) == (
        f"storage sqlite:///{locked}?timeout=0.1 is locked by another process (waited 0.1 s); "
        "try again when it is done, or raise ?timeout=SECONDS in the URL"
    )
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all " * 200)
    error = sqlite_fault(garbage, lambda s: None)
    line = faults.describe_fault(error, f"sqlite:///{garbage}")
    assert isinstance(line, UsageError) and not isinstance(line, RunFailure)
    assert str(line) == f"storage sqlite:///{garbage} is not an SQLite database"
    odd = sqlite3.OperationalError("no such table: trials")
    assert str(faults.describe_fault(odd, f"sqlite:///{garbage}")) == (
        f"storage sqlite:///{garbage} failed: no such table: trials"
    )


def test_a_fault_is_described_with_the_storage_opened_last_unless_one_is_named(monkeypatch):
    lost = sqlite3.OperationalError("database is locked")
    opened = ["sqlite:///first.db", "sqlite:///second.db", "sqlite:///last.db"]
    monkeypatch.setattr(faults, "OPENED", opened)
    assert str(faults.describe_fault(lost)).startswith("storage sqlite:///last.db is locked")
    assert str(faults.describe_fault(lost, "sqlite:///named.db")).startswith(
        "storage sqlite:///named.db is locked"
    )
    assert faults.describe_fault(ValueError("no storage's"), "sqlite:///named.db") is None
    opened = ["sqlite:///first.db", "sqlite:///second.db", "grpc://localhost:13000"]
    monkeypatch.setattr(faults, "OPENED", opened)
    assert str(faults.describe_fault(Status(grpc.StatusCode.UNAVAILABLE, "gone"))).startswith(
        "cannot reach storage grpc://localhost:13000: gRPC UNAVAILABLE: gone"
    )
    # behind the proxy, a database error is the proxy's to report, not ours to guess at
    assert faults.describe_fault(lost) is None
    monkeypatch.setattr(faults, "OPENED", [])
    assert faults.describe_fault(lost) is None  # no storage opened: nothing to name


def test_each_postgresql_refusal_is_its_line_and_its_kind():
    """A database that does not exist (usage: a typo), and a server that takes no writes
    (exit 1: point at the primary), as the real PostgreSQL says them."""
    missing = postgres.database_url("no_such_database")
    error = raised_by(lambda: optuna.storages.RDBStorage(missing))
    line = faults.describe_fault(error, missing)
    assert isinstance(line, UsageError) and not isinstance(line, RunFailure)
    assert str(line).startswith(  # the URL as the driver is named for it
        "storage postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database cannot be opened: "
    )
    assert str(line).endswith('database "no_such_database" does not exist (a typo in the URL?)')
    optuna.storages.RDBStorage(postgres.URL).engine.dispose()  # Optuna's tables, made first
    read_only = postgres.URL + "?options=-c%20default_transaction_read_only%3Don"
    storage = optuna.storages.RDBStorage(read_only)
    error = raised_by(lambda: optuna.create_study(storage=storage))
    line = faults.describe_fault(error, read_only)
    assert isinstance(line, RunFailure), line
    assert "is read-only: " in str(line) and str(line).endswith(
        "(a standby in recovery, or default_transaction_read_only); point --storage at the primary"
    )
    storage.engine.dispose()
