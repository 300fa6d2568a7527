"""One line for every way a storage can fail (locked, read-only, damaged, not a database,
unreachable), whose fault each is, and which errors are outages (waited out) or races (another
process ended the trial)."""

import sqlite3

import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError

from registry import RunFailure, UsageError, files
from search.tuning.store import proxy_client, urls

try:  # a lost proxy (grpc://) is an outage like a lost database
    from grpc import RpcError, StatusCode

    PROXY_ERRORS: tuple[type[BaseException], ...] = (RpcError,)
except ImportError:  # the proxy extra is not installed
    PROXY_ERRORS = ()


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


# A PostgreSQL that answers but refuses: what the server said (in the error's first line), what
# it means, and what to do about it
POSTGRES_FAULTS = {
    "does not exist": (UsageError, "cannot be opened: {text} (a typo in the URL?)"),
    "permission denied": (UsageError, "refused this role: {text}; Optuna makes its tables "
                          "there once (the role needs CREATE on the schema for that) and then "
                          "writes them: grant those rights, or use a role that has them"),
    "read-only transaction": (RunFailure, "is read-only: {text} (a standby in recovery, or "
                              "default_transaction_read_only); point --storage at the primary"),
}  # fmt: skip


# The storages this process opened, latest last: a fault that surfaces at the command's
# boundary (search.cli) is described with the URL it came from.
OPENED: list[str] = []


def describe_fault(error: BaseException, url: str | None = None) -> UsageError | None:
    """The storage fault behind `error` as one line (for `url`, by default the storage this
    process opened last), or None if it is not one."""
    lost = outage(error) or _behind(error, (sqlalchemy.exc.DBAPIError, sqlite3.DatabaseError))
    if lost is None or not (url or OPENED):
        return None
    if proxy_client.is_proxy_url(url or OPENED[-1]):  # the proxy, or the database behind it
        if not isinstance(lost, PROXY_ERRORS):
            return None
        return RunFailure(f"cannot reach storage {url or OPENED[-1]}: {first_line(lost)} (is "
                          "search.proxy running there, and its database up?)")  # fmt: skip
    parsed = urls.parse_url(url or OPENED[-1])
    shown = parsed.render_as_string(hide_password=True)
    text = first_line(lost)
    if parsed.get_backend_name() == "sqlite":
        for cause, (kind, meaning) in SQLITE_FAULTS.items():
            if cause in text:
                return kind(
                    f"storage {shown} " + meaning.format(timeout=urls.sqlite_timeout(parsed))
                )
        return RunFailure(f"storage {shown} failed: {text}")
    for cause, (kind, meaning) in POSTGRES_FAULTS.items():
        if cause in text:
            return kind(f"storage {shown} " + meaning.format(text=text))
    return RunFailure(f"cannot reach storage {shown}: {text}")
