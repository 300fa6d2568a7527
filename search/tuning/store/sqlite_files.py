"""An SQLite study file checked before Optuna opens it (not someone else's database, not a
mistyped path), and its connections: synchronous=NORMAL under WAL, query_only for readers."""

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL

from registry import UsageError, files
from search.tuning.store import urls
from search.tuning.store.faults import describe_fault


def check_sqlite_file(path: Path, parsed: URL, create: bool) -> None:
    """Refuse, before Optuna opens it, a file that is not a study storage: Optuna would add its
    tables to someone else's database, and create a new one where a path was mistyped."""
    shown = parsed.render_as_string(hide_password=True)
    if not path.exists():
        if not create:
            raise UsageError(
                f"no study storage at {path} ({shown}): check the path, or start a study "
                "there with python -m search.run"
            )
        if not path.parent.is_dir():
            raise UsageError(f"storage {shown}: the folder {path.parent} does not exist")
        return
    if path.is_dir():
        raise UsageError(f"storage {shown} is a folder, not an SQLite file")
    with path.open("rb") as opened:
        header = opened.read(len(files.SQLITE_HEADER))
    if header and header != files.SQLITE_HEADER:
        raise UsageError(f"storage {shown} is not an SQLite database")
    try:
        reading = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=urls.sqlite_timeout(parsed)
        )
        with contextlib.closing(reading) as connection:
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
    except sqlite3.DatabaseError as error:
        raise describe_fault(error, shown) from None
    if tables and "studies" not in tables:
        raise UsageError(
            f"storage {shown} is an SQLite database without Optuna's tables, not a study "
            "storage; choose another file"
        )
    if not tables and not create:
        raise UsageError(f"storage {shown} holds no studies yet (start one with search.run)")


@contextlib.contextmanager
def one_opener_at_a_time(parsed: URL, writes: bool) -> Iterator[None]:
    """While a process opens an SQLite study file to write, others wait: Optuna makes its
    tables in a new file one statement at a time, and two search.run started at once on one
    new file both made them, one failing on the other's half-made schema ("table studies
    already exists", "UNIQUE constraint failed: alembic_version"), and the file was removed as
    one SQLite could not create while the other used it (issue 44). An flock on the file's
    folder (no lock file left beside the study): the second opens a finished file. Held only
    while opening (tens of milliseconds); readers and other backends do not take it."""
    if parsed.get_backend_name() != "sqlite" or not writes:
        yield
        return
    folder = Path(parsed.database).expanduser().parent
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # no such folder: check_sqlite_file says so in one line
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def sync_at_checkpoints(connection, _record) -> None:
    """SQLite's synchronous=NORMAL, with WAL: a commit no longer waits for the disk (fsync)
    but for the next checkpoint. A trial writes a row per parameter and per report, so a
    `fast` trial's bookkeeping took 270 ms on SQLite, 11% of a 2.5 s GPU trial, against about
    150 ms with it (search.bench's bookkeeping section). The file stays consistent whatever
    happens; a power cut (not a crash) may lose the last commits, which trials re-run."""
    connection.execute("PRAGMA synchronous=NORMAL")


def query_only(path: Path, timeout: float):
    """SQLite connections for a read-only command: query_only refuses every write (Optuna's
    attempt to create its tables in a file that has none too), as SQLite's mode=ro did; but
    a mode=ro connection cannot fold the write-ahead log back into the file as it closes, and
    search.status left -wal and -shm files beside the study. These do, when they are the last."""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(str(path), timeout=timeout, check_same_thread=False)
        connection.execute("PRAGMA query_only=ON")
        return connection

    return connect
