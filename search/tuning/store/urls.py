"""Storage URLs: the backends we open (SQLite, PostgreSQL; grpc:// is the proxy's), the driver
and engine options of each, and a malformed or mistyped URL refused in one line."""

import sqlalchemy
from sqlalchemy.engine import URL, make_url

from registry import UsageError
from search.tuning.store import proxy_client

SQLITE_TIMEOUT_SECONDS = 60  # sqlite:///FILE.db?timeout=S sets another
# A worker's connections at most: its trial's and its heartbeat thread's (Optuna opens a
# session per call and returns the connection at once, so two threads never need more). An
# idle worker keeps one. Measured in BENCHMARKS.md ("Workers on one PostgreSQL").
CONNECTIONS_PER_WORKER = 2
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


def sqlite_timeout(parsed: URL) -> float:
    return float(parsed.query.get("timeout", SQLITE_TIMEOUT_SECONDS))
