"""Connection room on a PostgreSQL: each process of the search names itself on the server, and
a search (and each worker once connected) refuses to start where too few connections are
free, rather than let late workers die with "too many clients already"."""

import dataclasses
import os
import socket

import sqlalchemy
from optuna.storages import RDBStorage
from sqlalchemy.engine import URL

from registry import UsageError
from search.tuning.store import proxy_client
from search.tuning.store.faults import describe_fault, first_line
from search.tuning.store.urls import CONNECTIONS_PER_WORKER, parse_url

# Room kept free beside the workers for what an operator opens while they run: a dashboard's
# pool, a psql. Without it the workers may take every connection and the dashboard tips the
# server over ("too many clients already").
CONNECTIONS_KEPT_FREE = 3
# Every connection of this product names its process on the server (pg_stat_activity), so
# that a worker can count the search's processes, and the scale benchmark their connections.
# A URL's own ?application_name=... wins.
APPLICATION = "cifar-search"


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
