"""Opening the study storage (SQLite file, PostgreSQL, or the gRPC proxy) with settings for
many workers: heartbeats that ride out an outage, WAL for SQLite, read-only where a command
only reads, closed when the command ends."""

import atexit
import contextlib
import dataclasses
import logging
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial
from sqlalchemy.engine import URL

from registry import UsageError
from registry.options import OptionGroup, check_positive, flag
from search.tuning.records import ledger
from search.tuning.store import proxy_client, room, sqlite_files, urls
from search.tuning.store.faults import OPENED, describe_fault, first_line, outage

log = logging.getLogger("search.storage")

# Seconds, not sub-second: too short an interval fails live trials (optuna#4234, #5470).
HEARTBEAT_INTERVAL_SECONDS = 60
GRACE_PERIOD_SECONDS = 180


def _read_alembic_scripts_once() -> None:
    """Optuna's RDBStorage builds alembic's script directory anew each time it opens a
    storage, executing every migration file (three times for a new SQLite file, about two
    thirds of its 90-100 ms here; once for an existing one), and the suite opens hundreds.
    The scripts are the installed Optuna's and do not change within a process, so the
    directory is built once; it is only read for revisions (the head, stamping a new
    storage), never for a database URL (`upgrade` makes its own config). Optuna's private
    API (5.x, optuna/storages/_rdb/storage.py); where it has moved, nothing changes."""
    manager = getattr(optuna.storages._rdb.storage, "_VersionManager", None)
    build = getattr(manager, "_create_alembic_script", None)
    if build is None or getattr(build, "built_once", False):
        return
    built = {}

    def once(self):
        if "scripts" not in built:
            built["scripts"] = build(self)
        return built["scripts"]

    once.built_once = True
    manager._create_alembic_script = once


_read_alembic_scripts_once()


@dataclasses.dataclass(frozen=True)
class Liveness(OptionGroup):
    """How a study tells a dead worker's trial from a live one, and how long a worker waits
    for a lost storage."""

    title: ClassVar[str] = "liveness and patience"

    heartbeat_interval: int = flag(
        HEARTBEAT_INTERVAL_SECONDS, type=int,
        help=f"seconds between a running trial's heartbeats (default {HEARTBEAT_INTERVAL_SECONDS})",
    )  # fmt: skip
    grace_period: int = flag(
        GRACE_PERIOD_SECONDS, type=int,
        help="seconds without a heartbeat after which a trial counts as dead: it is marked FAIL "
        "and re-run with the same parameters, from its last checkpoint "
        f"(default {GRACE_PERIOD_SECONDS})",
    )  # fmt: skip
    storage_patience: int = flag(
        1800, type=int, metavar="S",
        help="seconds a worker waits for a lost storage (a database restart, a maintenance "
        "window, the proxy down) before it gives up; it says when it starts waiting and when "
        "the storage is back, and re-runs the trial the outage cut off from its checkpoint "
        "(default 1800; 0 waits for ever)",
    )  # fmt: skip

    def check(self, given: Mapping[str, Any]) -> None:
        check_positive(given, "heartbeat_interval", "grace_period")

    def settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The SQLite files this process has checked: a file is checked once, before its first
# connection. Checking it again beside open connections (the parent of a search's workers
# opens it twice) made searches see it as malformed (measured: 4 of 8 two-worker searches).
CHECKED: set[Path] = set()


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

    def __init__(self, *args, **kwargs) -> None:
        """A storage that cannot be opened (its tables not made, a schema of another version)
        closes the connection its engine pooled on the way: left to the garbage collector, it
        warned on the user's stderr (psycopg's ResourceWarning) during a later command of a
        process that goes on (search.api's, a notebook's, the tests')."""
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            engine = getattr(self, "engine", None)  # made before the tables are
            if engine is not None:
                engine.dispose()
            raise

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
    parsed = urls.parse_url(url)
    shown = parsed.render_as_string(hide_password=True)
    with sqlite_files.one_opener_at_a_time(parsed, writes=not read_only):
        storage = opened_storage(
            parsed, url, create, read_only, heartbeat_interval, grace_period, on_stale
        )  # fmt: skip
    close_at_exit(storage.engine)
    OPENED.append(url)
    log.debug("opened storage %s (%s)", shown, "read-only" if read_only else "read-write")
    return storage


def opened_storage(
    parsed: URL, url: str, create: bool, read_only: bool, heartbeat_interval: int,
    grace_period: int, on_stale,
) -> RDBStorage:  # fmt: skip
    """The RDBStorage, its tables made if it is new, or one line why it cannot be opened (and
    no empty SQLite file left behind where none was)."""
    shown = parsed.render_as_string(hide_password=True)
    made = made_here(parsed)
    parsed, engine_kwargs = engine_settings(parsed, create, read_only)
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
        if parsed.get_backend_name() == "sqlite" and not read_only:
            write_ahead(storage)
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
        raise refusal(error, url, made, read_only) from None
    return storage


def made_here(parsed: URL) -> Path | None:
    """The SQLite file that opening `parsed` will make (removed if the opening fails)."""
    if parsed.get_backend_name() != "sqlite":
        return None
    path = Path(parsed.database).expanduser()
    return None if path.exists() else path


def engine_settings(parsed: URL, create: bool, read_only: bool) -> tuple[URL, dict[str, Any]]:
    """The URL and engine options to open a storage with: an SQLite file checked first (once a
    process) and its lock wait, read-only connections where asked; a PostgreSQL connection
    named after this process, in read-only transactions where asked."""
    backend = parsed.get_backend_name()
    engine_kwargs = {**urls.ENGINE_OPTIONS[backend][1]}
    if backend == "sqlite":
        path = Path(parsed.database).expanduser()
        if (resolved := path.resolve()) not in CHECKED:
            sqlite_files.check_sqlite_file(path, parsed, create and not read_only)
            CHECKED.add(resolved)
        if read_only:
            engine_kwargs = {"creator": sqlite_files.query_only(path, urls.sqlite_timeout(parsed))}
        else:
            engine_kwargs["connect_args"] = {"timeout": urls.sqlite_timeout(parsed)}
        return parsed.set(database=str(path), query={}), engine_kwargs
    connect_args = {**engine_kwargs["connect_args"], **room.process_name(parsed)}
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return parsed, {**engine_kwargs, "connect_args": connect_args}


def write_ahead(storage: RDBStorage) -> None:
    """SQLite's write-ahead log, which lets readers (the dashboard) work beside writing
    workers, with synchronous=NORMAL on every connection from now on."""
    with storage.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    sqlalchemy.event.listen(storage.engine, "connect", sqlite_files.sync_at_checkpoints)
    storage.engine.dispose()  # the connections made so far lack it


def refusal(error: BaseException, url: str, made: Path | None, read_only: bool) -> UsageError:
    """Why a storage could not be opened, in one line, with no empty SQLite file left where
    none was (a full disk, say)."""
    if made is not None:
        for left in (made, *(Path(f"{made}{end}") for end in ("-wal", "-shm", "-journal"))):
            left.unlink(missing_ok=True)
    shown = urls.parse_url(url).render_as_string(hide_password=True)
    if read_only and ("readonly" in first_line(error) or "read-only" in first_line(error)):
        # Optuna found none of its tables and tried to create them
        return UsageError(f"storage {shown} holds no Optuna studies")
    return describe_fault(error, url) or UsageError(
        f"cannot open storage {shown}: {first_line(error)}"
    )


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
