"""Opening the study storage (SQLite file or PostgreSQL) with settings for many workers, and
one line for every way a storage can fail (locked, read-only, damaged, not a database, another
Optuna schema version, unreachable)."""

import atexit
import contextlib
import dataclasses
import logging
import os
import socket
import sqlite3
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial
from sqlalchemy.engine import URL, make_url

from registry import RunFailure, UsageError, files
from search.tuning.records import ledger
from search.tuning.store import proxy_client

log = logging.getLogger("search.storage")

try:  # a lost proxy (grpc://) is an outage like a lost database
    from grpc import RpcError, StatusCode

    PROXY_ERRORS: tuple[type[BaseException], ...] = (RpcError,)
except ImportError:  # the proxy extra is not installed
    PROXY_ERRORS = ()

# Seconds, not sub-second: too short an interval fails live trials (optuna#4234, #5470).
HEARTBEAT_INTERVAL_SECONDS = 60
GRACE_PERIOD_SECONDS = 180

SQLITE_TIMEOUT_SECONDS = 60  # sqlite:///FILE.db?timeout=S sets another
# A worker's connections at most: its trial's and its heartbeat thread's (Optuna opens a
# session per call and returns the connection at once, so two threads never need more). An
# idle worker keeps one. Measured in BENCHMARKS.md ("Workers on one PostgreSQL").
CONNECTIONS_PER_WORKER = 2
# Room kept free beside the workers for what an operator opens while they run: a dashboard's
# pool, a psql. Without it the workers may take every connection and the dashboard tips the
# server over ("too many clients already").
CONNECTIONS_KEPT_FREE = 3
# Every connection of this product names its process on the server (pg_stat_activity), so
# that a worker can count the search's processes, and the scale benchmark their connections.
# A URL's own ?application_name=... wins.
APPLICATION = "cifar-search"
# Per backend: driver to use and engine options. SQLite waits for the file lock instead of
# failing with "database is locked"; PostgreSQL checks pooled connections before use (they die
# when the server restarts) and keeps a small pool, since every worker process has its own.
ENGINE_OPTIONS = {
    "sqlite": ("sqlite", {"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}}),
    "postgresql": (
        "postgresql+psycopg",
        {
            "pool_pre_ping": True,
            "pool_size": 1,
            "max_overflow": CONNECTIONS_PER_WORKER - 1,
            "connect_args": {"connect_timeout": 10},
        },
    ),
}


def outage(error: BaseException | None) -> BaseException | None:
    """The lost-connection error behind `error`, if any: the database's, or the proxy's (a
    gRPC error). Optuna can replace it: when it cannot record a trial's end it fails an
    assertion, with the database error as its context."""
    return _behind(error, (sqlalchemy.exc.OperationalError, *PROXY_ERRORS))


def finished_elsewhere(error: BaseException) -> bool:
    """Whether `error` says a trial this process wrote to had been ended by another: Optuna's
    tell ("Cannot tell a FAIL trial."), its storage's UpdateFinishedTrialError, or that error
    through the proxy (gRPC FAILED_PRECONDITION). A race or a verdict, never an outage."""
    if isinstance(error, ValueError) and str(error).startswith("Cannot tell a"):
        return True
    proxied = _behind(error, PROXY_ERRORS) if PROXY_ERRORS else None
    if proxied is not None and callable(getattr(proxied, "code", None)):
        return proxied.code() == StatusCode.FAILED_PRECONDITION
    return _behind(error, (UpdateFinishedTrialError,)) is not None


def _behind(error: BaseException | None, kinds) -> BaseException | None:
    """The first error of `kinds` in `error`'s chain of causes and contexts, if any."""
    while error is not None:
        if isinstance(error, kinds):
            return error
        error = error.__cause__ or error.__context__
    return None


def first_line(error: BaseException) -> str:
    """The driver's own message where SQLAlchemy wraps one: it says what went wrong. A gRPC
    error (the proxy's) by its status and details, which its first line leaves out."""
    if PROXY_ERRORS and isinstance(error, PROXY_ERRORS) and callable(getattr(error, "code", None)):
        return f"gRPC {error.code().name}: {error.details()}"
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def check_url(url: str) -> None:
    """A malformed storage URL fails here, before anything is loaded."""
    if proxy_client.is_proxy_url(url):
        proxy_client.host_and_port(url)
    else:
        parse_url(url)


# Other programs' names for our databases (Heroku's and libpq's postgres://, Python's sqlite3)
BACKEND_ALIASES = {"postgres": "postgresql", "sqlite3": "sqlite"}


def parse_url(url: str) -> URL:
    """Check a database URL and pick our driver (psycopg 3 for a plain postgresql:// URL)."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        if ":" not in url:  # a file's path, as optuna-dashboard takes it
            raise UsageError(
                f"--storage '{url}' is not a URL; did you mean sqlite:///{url}?"
            ) from None
        raise UsageError(
            f"malformed --storage URL '{url}'; use sqlite:///FILE.db, "
            "postgresql://USER@HOST:PORT/DATABASE or grpc://HOST:PORT"
        ) from None
    backend = parsed.get_backend_name()
    if backend in BACKEND_ALIASES:
        meant = BACKEND_ALIASES[backend]
        raise UsageError(f"--storage '{url}': SQLAlchemy spells it {meant}://; "
                         f"did you mean {meant}{url[len(parsed.drivername):]}?")  # fmt: skip
    if backend not in ENGINE_OPTIONS:
        raise UsageError(
            f"--storage '{url}': unsupported database '{backend}'; use sqlite or postgresql "
            "(or grpc://HOST:PORT, a proxy)"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise UsageError("--storage: SQLite needs a file, e.g. sqlite:///studies.db")
    if parsed.drivername == backend:
        parsed = parsed.set(drivername=ENGINE_OPTIONS[backend][0])
    return parsed


# What SQLite's own messages mean for a study file, and whose fault each is: a file that
# someone else holds or that cannot be written is a failure to run (exit 1), the rest usage.
SQLITE_FAULTS = {
    "database is locked": (RunFailure, "is locked by another process (waited {timeout:g} s); "
                           "try again when it is done, or raise ?timeout=SECONDS in the URL"),
    "readonly database": (RunFailure, "is read-only (the file or its folder cannot be written); "
                          "copy it somewhere writable, or read it with search.status, "
                          "search.export or search.report"),
    "malformed": (UsageError, "is damaged (SQLite: database disk image is malformed); restore "
                  "it from a copy"),
    "not a database": (UsageError, "is not an SQLite database"),
    "disk I/O error": (RunFailure, "cannot be read or written (SQLite: disk I/O error): its "
                       "disk is full (SQLite needs room beside it for its -wal and -shm files) "
                       "or failing"),
    "database or disk is full": (files.OutOfSpace, "is on a full disk (SQLite: database or "
                                 "disk is full); free some space there and run the same "
                                 "command again"),
    "unable to open database file": (UsageError, "cannot be opened: its folder does not exist "
                                     "or cannot be written"),
}  # fmt: skip


# The SQLite files this process has checked: a file is checked once, before its first
# connection. Checking it again beside open connections (the parent of a search's workers
# opens it twice) made searches see it as malformed (measured: 4 of 8 two-worker searches).
CHECKED: set[Path] = set()
# The storages this process opened, latest last: a fault that surfaces at the command's
# boundary (search.cli) is described with the URL it came from.
OPENED: list[str] = []


def describe_fault(error: BaseException, url: str | None = None) -> UsageError | None:
    """The storage fault behind `error` as one line (for `url`, by default the storage this
    process opened last), or None if it is not one."""
    lost = outage(error) or _behind(error, (sqlalchemy.exc.DBAPIError, sqlite3.DatabaseError))
    if lost is None or not (url or OPENED) or proxy_client.is_proxy_url(url or OPENED[-1]):
        return None
    parsed = parse_url(url or OPENED[-1])
    shown = parsed.render_as_string(hide_password=True)
    text = first_line(lost)
    if parsed.get_backend_name() == "sqlite":
        for cause, (kind, meaning) in SQLITE_FAULTS.items():
            if cause in text:
                return kind(f"storage {shown} " + meaning.format(timeout=_timeout(parsed)))
        return RunFailure(f"storage {shown} failed: {text}")
    if "does not exist" in text:  # a database or role that is not there: a typo in the URL
        return UsageError(f"cannot open storage {shown}: {text}")
    return RunFailure(f"cannot reach storage {shown}: {text}")


def _timeout(parsed: URL) -> float:
    return float(parsed.query.get("timeout", SQLITE_TIMEOUT_SECONDS))


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
        reading = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=_timeout(parsed))
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


def stale_reason(grace_period: float) -> str:
    return (
        f"killed or cut off: no heartbeat for {grace_period:g} s (its worker died or lost the "
        "storage)"
    )


class HeartbeatingStorage(RDBStorage):
    """Optuna's heartbeat thread ends at the first error it meets (with a traceback on
    stderr), and the trial then looks dead once the grace period passes: a database restart
    during a trial would fail a live trial. Here a beat lost to an outage is skipped; the
    next, heartbeat_interval later, tries again (the worker's loop reports the outage)."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """The trials Optuna is about to fail for want of a heartbeat, each given its reason
        first (a FAIL trial's attributes can no longer be written)."""
        stale = super()._get_stale_trial_ids(study_id)
        for trial_id in stale:  # another worker may have been first: then it said why
            ledger.fail_with_reason(self, trial_id, stale_reason(self.grace_period), end=False)
        return stale

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as error:
            if outage(error) is None:
                raise
            log.debug("heartbeat of trial %d skipped: %s", trial_id, first_line(error))


def open_storage(
    url: str,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_SECONDS,
    grace_period: int = GRACE_PERIOD_SECONDS,
    *,
    create: bool = True,
    read_only: bool = False,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> RDBStorage:
    """An RDBStorage with heartbeats: a trial whose worker died (no heartbeat for
    grace_period seconds) is failed when a worker next asks for a trial, and handed to
    `on_stale` (the workers' retry policy, execution/retries.py, which re-runs it).
    Only search.run `create`s a storage; `read_only` ones (search.status, export, report)
    cannot write to it at all (SQLite's query_only, PostgreSQL's read-only transactions).
    grpc://HOST:PORT is the storage that `python -m search.proxy` serves (proxy_client.py): its
    heartbeats, and whether it may be written, are the proxy's."""
    if proxy_client.is_proxy_url(url):
        opened = proxy_client.open_proxy(url, heartbeat_interval)
        OPENED.append(url)
        return opened
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    shown = parsed.render_as_string(hide_password=True)
    engine_kwargs = {**ENGINE_OPTIONS[backend][1]}
    made: Path | None = None  # the SQLite file this call makes, removed if it fails
    if backend == "sqlite":
        path = Path(parsed.database).expanduser()
        made = None if path.exists() else path
        if (resolved := path.resolve()) not in CHECKED:
            check_sqlite_file(path, parsed, create and not read_only)
            CHECKED.add(resolved)
        if read_only:
            engine_kwargs = {"creator": query_only(path, _timeout(parsed))}
        else:
            engine_kwargs["connect_args"] = {"timeout": _timeout(parsed)}
        parsed = parsed.set(database=str(path), query={})
    else:
        engine_kwargs["connect_args"] = {**engine_kwargs["connect_args"], **process_name(parsed)}
        if read_only:
            engine_kwargs["connect_args"]["options"] = "-c default_transaction_read_only=on"
    try:
        with warnings.catch_warnings():  # "experimental" since Optuna 2.8: nothing to act on
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = HeartbeatingStorage(
                parsed.render_as_string(hide_password=False),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=on_stale,
            )
        if backend == "sqlite" and not read_only:  # WAL lets readers (the dashboard) work
            with storage.engine.connect() as connection:  # beside writing workers
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            sqlalchemy.event.listen(storage.engine, "connect", sync_at_checkpoints)
            storage.engine.dispose()  # the connections made so far lack it
    except ImportError as error:
        raise UsageError(
            f"--storage {shown} needs a driver that is not installed ({error.name}); "
            "for PostgreSQL: pip install -e '.[postgres]'"
        ) from None
    except RuntimeError as error:  # Optuna's schema check, with its own remedy
        raise UsageError(
            f"storage {shown} was written by another version of Optuna's schema: {error}"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as error:
        if made is not None:  # a full disk, say: no empty storage left where none was
            for left in (made, *(Path(f"{made}{end}") for end in ("-wal", "-shm", "-journal"))):
                left.unlink(missing_ok=True)
        if read_only and ("readonly" in first_line(error) or "read-only" in first_line(error)):
            # Optuna found none of its tables and tried to create them
            raise UsageError(f"storage {shown} holds no Optuna studies") from None
        fault = describe_fault(error, url)
        raise fault or UsageError(f"cannot open storage {shown}: {first_line(error)}") from None
    close_at_exit(storage.engine)
    OPENED.append(url)
    log.debug("opened storage %s (%s)", shown, "read-only" if read_only else "read-write")
    return storage


def close(opened) -> None:
    """Return a storage's connections now (a proxy client has none of its own)."""
    if isinstance(opened, RDBStorage):
        opened.engine.dispose()


@contextlib.contextmanager
def kept_open(url: str, *args, **kwargs) -> Iterator[RDBStorage]:
    """open_storage(url, ...) for as long as the block runs, closed at its end: a command
    that ends in a process that goes on (search.api's, a notebook's) gives its connections
    back, and SQLite then folds its write-ahead log into the file, which alone holds the
    study again."""
    storage = open_storage(url, *args, **kwargs)
    try:
        yield storage
    finally:
        close(storage)


def close_at_exit(engine: sqlalchemy.engine.Engine) -> None:
    """Close the engine's pooled connections when the process exits, even if a reference cycle
    still holds it (search.cli freezes the garbage collector at exit): SQLite folds its
    write-ahead log back into the file when the last connection closes, so a study file copied
    after a run holds every trial, and PostgreSQL sees its clients leave."""
    alive = weakref.ref(engine)

    def dispose() -> None:
        if (still := alive()) is not None:
            still.dispose()

    atexit.register(dispose)


def process_name(parsed: URL) -> dict[str, str]:
    """connect_args naming this process on the server, unless the URL names it."""
    if "application_name" in parsed.query:
        return {}
    # PostgreSQL keeps 63 bytes of it; the pid comes first, so it survives a long host name
    return {"application_name": f"{APPLICATION} {os.getpid()}@{socket.gethostname()}"[:63]}


@dataclasses.dataclass(frozen=True)
class Room:
    """A PostgreSQL's client connections as a worker sees them."""

    limit: int  # max_connections
    reserved: int  # superuser_reserved_connections
    others: int  # held by anything but this product's processes
    ours: dict[str, int]  # this product's, by process (application_name), first connected first

    @classmethod
    def read(cls, connection) -> "Room":
        limit, reserved = (int(connection.exec_driver_sql(query).scalar())
                           for query in ("SHOW max_connections",
                                         "SHOW superuser_reserved_connections"))  # fmt: skip
        held = connection.exec_driver_sql(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' GROUP BY application_name "
            "ORDER BY min(backend_start), application_name"
        ).all()
        ours = {name: int(n) for name, n in held if name.startswith(APPLICATION + " ")}
        return cls(limit, reserved, sum(int(n) for _, n in held) - sum(ours.values()), ours)

    @property
    def free(self) -> int:
        return self.limit - self.reserved - self.others - sum(self.ours.values())

    def needed_up_to(self, name: str) -> int:
        """What this product's processes connected before `name`, and `name`, may hold at
        once: each at least a worker's share. Those that came later are theirs to check."""
        needed = 0
        for process, held in self.ours.items():
            needed += max(held, CONNECTIONS_PER_WORKER)
            if process == name:
                break
        return needed


def check_connections(url: str, workers: int) -> None:
    """Refuse to start `workers` worker processes (and their parent) on a PostgreSQL that has
    too few free connections for them: past max_connections, the ones that come late die with
    "too many clients already". Other storages (the proxy too) have no such limit. Each worker
    checks again once it is connected (check_room): plans made at once on many hosts each
    pass this count alone."""
    if (
        proxy_client.is_proxy_url(url)
        or (parsed := parse_url(url)).get_backend_name() != "postgresql"
    ):
        return
    engine = sqlalchemy.create_engine(
        parsed, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": 10}
    )
    try:
        with engine.connect() as connection:
            room = Room.read(connection)
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise describe_fault(error, url) or UsageError(first_line(error)) from None
    finally:
        engine.dispose()
    free = room.free + 1  # this check's own connection is about to go
    needed = workers * CONNECTIONS_PER_WORKER + (CONNECTIONS_PER_WORKER if workers > 1 else 0)
    if needed > free:
        shown = parsed.render_as_string(hide_password=True)
        raise UsageError(
            f"{workers} worker(s) need up to {needed} connections to {shown}, which has {free} "
            f"free (max_connections {room.limit}, {room.limit - room.reserved - free} in use, "
            f"{room.reserved} reserved): run fewer workers, raise max_connections, or serve "
            "the study to them through python -m search.proxy (README: Many GPUs, many hosts)"
        )


def check_room(opened, slot: int) -> None:
    """A worker, once connected, against the server's live count: the search's processes on
    it (this one among them, and every other that has connected, on any host) may each hold
    CONNECTIONS_PER_WORKER, and CONNECTIONS_KEPT_FREE must stay free beside them. Workers that
    start together all see one another here, which their plans' counts could not (one sbatch
    array, many hosts). Those connected first keep their places; one that finds no room
    behind them ends with the remedy."""
    if not isinstance(opened, RDBStorage) or opened.engine.dialect.name != "postgresql":
        return
    with opened.engine.connect() as connection:
        name = connection.exec_driver_sql("SHOW application_name").scalar()
        room = Room.read(connection)
        connection.rollback()
    if name not in room.ours:
        return  # named by its URL: this process cannot tell its connections from others'
    available = room.limit - room.reserved - room.others
    needed = room.needed_up_to(name) + CONNECTIONS_KEPT_FREE
    if needed > available:
        shown = opened.engine.url.render_as_string(hide_password=True)
        raise UsageError(
            f"worker {slot}: this and the {list(room.ours).index(name)} search processes "
            f"connected before it to {shown} may need up to {needed - CONNECTIONS_KEPT_FREE} "
            f"connections, with {CONNECTIONS_KEPT_FREE} kept free for a dashboard, and it has "
            f"{available} (max_connections {room.limit}, {room.reserved} reserved, "
            f"{room.others} held by others): serve the study to the workers through "
            "python -m search.proxy (README: Many GPUs, many hosts), or raise "
            "max_connections"
        )
