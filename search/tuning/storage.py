"""Opening the study storage (SQLite file or PostgreSQL) with settings for many workers."""

import atexit
import weakref

import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from sqlalchemy.engine import URL, make_url

from registry import UsageError

# Seconds, not sub-second: too short an interval fails live trials (optuna#4234, #5470).
HEARTBEAT_INTERVAL_SECONDS = 60
GRACE_PERIOD_SECONDS = 180

# Per backend: driver to use and engine options. SQLite waits for the file lock instead of
# failing with "database is locked"; PostgreSQL checks pooled connections before use (they die
# when the server restarts) and keeps a small pool, since every worker process has its own.
ENGINE_OPTIONS = {
    "sqlite": ("sqlite", {"connect_args": {"timeout": 60}}),
    "postgresql": (
        "postgresql+psycopg",
        {
            "pool_pre_ping": True,
            "pool_size": 2,
            "max_overflow": 2,
            "connect_args": {"connect_timeout": 10},
        },
    ),
}


def outage(error: BaseException | None) -> BaseException | None:
    """The lost-connection error behind `error`, if any. Optuna can replace it: when it cannot
    record a trial's end it fails an assertion, with the database error as its context."""
    while error is not None:
        if isinstance(error, sqlalchemy.exc.OperationalError):
            return error
        error = error.__cause__ or error.__context__
    return None


def first_line(error: BaseException) -> str:
    """The driver's own message where SQLAlchemy wraps one: it says what went wrong."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def parse_url(url: str) -> URL:
    """Check a storage URL and pick our driver (psycopg 3 for a plain postgresql:// URL)."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UsageError(
            f"malformed --storage URL '{url}'; use sqlite:///FILE.db or "
            "postgresql://USER@HOST:PORT/DATABASE"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ENGINE_OPTIONS:
        raise UsageError(
            f"--storage '{url}': unsupported database '{backend}'; use sqlite or postgresql"
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise UsageError("--storage: SQLite needs a file, e.g. sqlite:///studies.db")
    if parsed.drivername == backend:
        parsed = parsed.set(drivername=ENGINE_OPTIONS[backend][0])
    return parsed


def open_storage(
    url: str,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_SECONDS,
    grace_period: int = GRACE_PERIOD_SECONDS,
) -> RDBStorage:
    """An RDBStorage with heartbeats: a trial whose worker died (no heartbeat for
    grace_period seconds) is failed when a worker next asks for a trial, and re-run once."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    shown = parsed.render_as_string(hide_password=True)
    try:
        storage = RDBStorage(
            parsed.render_as_string(hide_password=False),
            engine_kwargs=ENGINE_OPTIONS[backend][1],
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
        if backend == "sqlite":  # WAL lets readers (the dashboard) work beside writing workers
            with storage.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    except ImportError as error:
        raise UsageError(
            f"--storage {shown} needs a driver that is not installed ({error.name}); "
            "for PostgreSQL: pip install -e '.[postgres]'"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise UsageError(f"cannot open storage {shown}: {first_line(error)}") from None
    close_at_exit(storage.engine)
    return storage


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
