"""Opening the storage: real SQLite files and the real PostgreSQL, and the errors people cause."""

import contextlib
import shutil
import sqlite3
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from registry import RunFailure, UsageError
from search import run
from search.tuning.results import artifacts
from search.tuning.store import faults, room, storage, urls
from tests import postgres
from tests.conftest import run_command, run_tiny_study


def test_a_plain_postgresql_url_gets_psycopg_3_and_sqlite_keeps_its_driver():
    assert urls.parse_url(postgres.URL).drivername == "postgresql+psycopg"
    assert urls.parse_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert urls.parse_url("sqlite:///s.db").drivername == "sqlite"


@pytest.mark.parametrize(
    "url, message",
    [
        ("studies.db", "--storage 'studies.db' is not a URL; did you mean sqlite:///studies.db?"),
        ("sqlite:/studies.db", "malformed --storage URL 'sqlite:/studies.db'"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("sqlite://", "SQLite needs a file"),
        ("sqlite:///:memory:", "SQLite needs a file"),
    ],
)
def test_urls_that_cannot_hold_a_shared_study_are_refused(url, message):
    with pytest.raises(UsageError, match=message):
        urls.parse_url(url)


def test_sqlite_opens_in_wal_mode_with_the_heartbeat_settings(tmp_path):
    opened = storage.open_storage(f"sqlite:///{tmp_path / 'w.db'}", 7, 21)
    with sqlite3.connect(tmp_path / "w.db") as connection:  # WAL is a mode of the file itself
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert (opened.heartbeat_interval, opened.grace_period) == (7, 21)
    assert (tmp_path / "w.db").exists()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask/tell outside optimize
def test_postgresql_holds_a_study_that_another_storage_object_reads():
    name = f"storage-{uuid.uuid4().hex[:8]}"
    first = storage.open_storage(postgres.URL)
    try:
        optuna.create_study(study_name=name, storage=first).tell(
            optuna.load_study(study_name=name, storage=first).ask(), 1.0
        )
        second = storage.open_storage(postgres.URL)
        assert optuna.load_study(study_name=name, storage=second).best_value == 1.0
        second.engine.dispose()
    finally:
        optuna.delete_study(study_name=name, storage=first)
        first.engine.dispose()


def test_an_unreachable_database_is_one_line_naming_it_without_the_password():
    with pytest.raises(RunFailure) as refused:  # exit code 1: nothing the user typed was wrong
        storage.open_storage("postgresql://postgres:secret@127.0.0.1:1/test")
    message = str(refused.value)
    assert message.startswith("cannot reach storage postgresql+psycopg://postgres:***@127.0.0.1:1")
    assert "Connection refused" in message
    assert "secret" not in message and "\n" not in message


def test_outage_finds_the_lost_connection_behind_optunas_wrapping():
    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
    try:
        try:
            raise lost
        except sqlalchemy.exc.OperationalError:
            raise AssertionError("Should not reach.")  # noqa: B904  (as Optuna raises it)
    except AssertionError as wrapped:
        assert faults.outage(wrapped) is lost
    assert faults.outage(ValueError("not the database")) is None
    assert faults.first_line(lost) == "server closed"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask outside optimize
def test_a_heartbeat_lost_to_an_outage_is_skipped_and_the_next_one_beats(tmp_path):
    """Optuna's heartbeat thread would end at the first error, and the live trial be failed
    as stale after the grace period. A locked SQLite file stands in for the outage here: the
    same OperationalError a PostgreSQL restart gives (test_worker.py has the restart)."""
    path = tmp_path / "beat.db"
    opened = storage.open_storage(f"sqlite:///{path}?timeout=0.1", heartbeat_interval=1)
    trial = optuna.create_study(storage=opened).ask()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(optuna.exceptions.StorageInternalError) as raised:  # Optuna's own
        optuna.storages.RDBStorage.record_heartbeat(opened, trial._trial_id)
    assert faults.outage(raised.value) is not None
    opened.record_heartbeat(trial._trial_id)  # skipped, no error
    locker.execute("ROLLBACK")
    locker.close()
    opened.record_heartbeat(trial._trial_id)
    with contextlib.closing(sqlite3.connect(path)) as reading:
        beats = reading.execute("SELECT COUNT(*) FROM trial_heartbeats").fetchone()
    assert beats == (1,)
    storage.close(opened)


def test_a_search_run_in_a_process_that_goes_on_leaves_every_trial_in_the_study_file(tmp_path):
    """A notebook's search (search.api, or search.run in any process that outlives it) closes
    the storages it opened when it ends: SQLite folds the write-ahead log back into the file
    then, so the file alone, copied or sent on, holds every trial."""
    run_tiny_study(tmp_path, "notebook", epochs=1, trials=3)
    wal = tmp_path / "notebook.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # nothing left outside the file
    copy = tmp_path / "sent" / "notebook.db"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "notebook.db", copy)  # the file alone, as `cp` or `scp` would
    found = optuna.load_study(study_name="notebook", storage=f"sqlite:///{copy}")
    assert len(found.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3


def connections_named(label: str) -> int:
    """Connections to the test database that carry this application_name."""
    counter = sqlalchemy.create_engine(
        urls.parse_url(postgres.URL), poolclass=sqlalchemy.pool.NullPool
    )
    try:
        with counter.connect() as connection:
            return connection.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %(label)s",
                {"label": label},
            ).scalar()
    finally:
        counter.dispose()


def test_a_search_run_in_a_process_that_goes_on_gives_back_its_postgresql_connections(tmp_path):
    """The same on PostgreSQL: none of the search's connections outlive it (each process may
    hold only so many: README, Many GPUs, many hosts). Its connections carry a name of their
    own, so what else uses the database does not count."""
    label = f"search-{uuid.uuid4().hex[:8]}"
    url = f"{postgres.URL}?application_name={label}"
    argv = ["--space", "test_tiny", "--space-module", "tests.spaces_for_tests",
            "--dataset", "sample", "--epochs", "1", "--trials", "2", "--storage", url,
            "--study", label, "--checkpoint-dir", str(tmp_path)]  # fmt: skip
    try:
        assert run.main(argv) == 0
        assert connections_named(label) == 0
    finally:
        with storage.kept_open(postgres.URL, create=False) as opened:
            with contextlib.suppress(KeyError):  # the run failed before it made the study
                optuna.delete_study(study_name=label, storage=opened)


def test_a_retrain_holds_no_connection_to_the_study_it_attaches_to_while_it_trains():
    """search.train --attach looks the source trial up before training and again to attach
    after it (artifacts.source_trial, entered twice), each time giving its connections back:
    hours of training hold none, and a retrain in a notebook leaves none behind."""
    label = f"attach-{uuid.uuid4().hex[:8]}"
    url = f"{postgres.URL}?application_name={label}"
    with storage.kept_open(postgres.URL) as opened:
        optuna.create_study(study_name=label, storage=opened).add_trial(
            optuna.trial.create_trial(value=0.5)
        )
    try:
        with artifacts.source_trial({"study": label, "trial": 0}, url) as (found, number):
            assert (found.study_name, number) == (label, 0)
            assert connections_named(label) == 1
        assert connections_named(label) == 0
    finally:
        with storage.kept_open(postgres.URL, create=False) as opened:
            optuna.delete_study(study_name=label, storage=opened)


def test_a_lost_proxy_is_said_with_its_grpc_status_and_details():
    """A real gRPC error from a proxy that is not there: its first line would say only
    '<_InactiveRpcError of RPC that terminated with:'; the status and the details are what an
    operator needs."""
    import warnings

    from optuna.storages import GrpcStorageProxy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GrpcStorageProxy is "experimental"
        unreachable = GrpcStorageProxy(host="127.0.0.1", port=1)
    with pytest.raises(Exception) as raised:
        unreachable.get_all_studies()
    lost = faults.outage(raised.value)
    assert lost is not None
    assert faults.first_line(lost).startswith("gRPC UNAVAILABLE: failed to connect")


def test_a_read_only_command_writes_nothing_and_leaves_no_log_files(tmp_path):
    """search.status, in a process of its own as a user runs it, reads the study and ends: the
    file alone holds it, no -wal or -shm beside it; and its storage refuses a write (here, a
    study created)."""
    run_tiny_study(tmp_path, "quiet", epochs=1, trials=1)
    alone = tmp_path / "alone"  # the file alone, as a user copies a finished study
    alone.mkdir()
    shutil.copy(tmp_path / "quiet.db", alone / "quiet.db")
    url = f"sqlite:///{alone / 'quiet.db'}"
    status = run_command("search.status", "--study", "quiet", "--storage", url, cwd=alone)
    assert status.returncode == 0, status.stderr
    assert sorted(p.name for p in alone.iterdir()) == ["quiet.db"]
    reader = storage.open_storage(url, read_only=True)
    with pytest.raises(optuna.exceptions.StorageInternalError) as refused:
        optuna.create_study(storage=reader, study_name="not-here")
    assert "attempt to write a readonly database" in str(refused.value.__cause__)
    storage.close(reader)
    assert optuna.get_all_study_names(storage=url) == ["quiet"]


@contextlib.contextmanager
def connections(names: list[str]):
    """Real connections to the test database, one per name (its application_name), held
    open for the block: other hosts' search processes, or an operator's other clients, as the
    server sees them."""
    engines = [sqlalchemy.create_engine(urls.parse_url(postgres.URL),
                                        poolclass=sqlalchemy.pool.NullPool,
                                        connect_args={"application_name": name})
               for name in names]  # fmt: skip
    with contextlib.ExitStack() as held:
        for engine in engines:
            held.enter_context(engine.connect())
        try:
            yield
        finally:
            held.close()
            for engine in engines:
                engine.dispose()


def test_a_worker_that_finds_no_room_behind_the_workers_connected_before_it_ends_with_the_remedy(
    tmp_path,
):
    """Three search processes on other hosts connected first (an sbatch array's tasks, each
    of which passed its own plan's count): a worker that starts now counts them on the server
    (2 connections each may be theirs, and 3 kept free for a dashboard), finds no room behind
    them, and ends with one line naming the proxy, before it takes a trial."""
    name = f"room-{uuid.uuid4().hex[:8]}"
    argv = ["--space", "test_tiny", "--space-module", "tests.spaces_for_tests", "--dataset",
            "sample", "--epochs", "1", "--trials", "2", "--storage", postgres.URL, "--study", name,
            "--create-only", "--checkpoint-dir", str(tmp_path / "checkpoints")]  # fmt: skip
    assert run.main(argv) == 0
    peers = [f"cifar-search {pid}@peer-{pid}" for pid in (101, 102, 103)]
    try:
        with connections(peers), storage.kept_open(postgres.URL, create=False) as opened:
            room.check_room(opened, 0)  # this process, behind them: room enough
            with opened.engine.connect() as connection:
                seen = room.Room.read(connection)
            # Others take all but what the peers, the new worker and the dashboard need,
            # less one; the peers' and the new worker's count do not depend on this process
            # (its own connections, ahead of the worker, only leave less room).
            available = seen.limit - seen.reserved - seen.others
            hogs = available - (3 * 2 + 2 + room.CONNECTIONS_KEPT_FREE) + 1
        with connections(peers), connections([f"someone else {i}" for i in range(hogs)]):
            result = run_command("search.worker", "--study", name, "--storage", postgres.URL,
                                 "--quiet", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "worker 0: this and the 3 search processes connected before it" in lines[0]
        assert "python -m search.proxy" in lines[0]
        study = postgres.load_study(name)
        assert study.trials == []  # refused before it took a trial
    finally:
        postgres.delete_study(name)


def test_transient_proxy_errors_are_retried_and_a_call_succeeds(tmp_path):
    """A real gRPC server in front of a real SQLite study answers UNAVAILABLE to the first
    attempt of every call, as a proxy under load or restarting does (seen: 33 of 200 workers
    lost the storage with no outage at all). Optuna's own client fails at the first; ours
    retries (gRPC's retry policy) and every call succeeds."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from optuna.storages import GrpcStorageProxy
    from optuna.storages._grpc import servicer
    from optuna.storages._grpc.auto_generated import api_pb2_grpc

    from search.tuning.store import proxy_client

    class Flaky(grpc.ServerInterceptor):
        """UNAVAILABLE for the first attempt of each call (by method and request)."""

        def __init__(self):
            self.attempts: dict[tuple, int] = {}

        def intercept_service(self, continuation, details):
            handler = continuation(details)

            def answer(request, context):
                key = (details.method, request.SerializeToString())
                self.attempts[key] = self.attempts.get(key, 0) + 1
                if self.attempts[key] == 1:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "busy, try again")
                return handler.unary_unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                answer, handler.request_deserializer, handler.response_serializer
            )

    served = storage.open_storage(f"sqlite:///{tmp_path / 'flaky.db'}")
    server = grpc.server(ThreadPoolExecutor(max_workers=4), interceptors=[Flaky()])
    api_pb2_grpc.add_StorageServiceServicer_to_server(
        servicer.OptunaStorageProxyService(served), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GrpcStorageProxy is "experimental"
            plain = GrpcStorageProxy(host="127.0.0.1", port=port)
            with pytest.raises(grpc.RpcError) as raised:
                plain.get_all_studies()
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE  # the fault is real
            ours = proxy_client.open_proxy(f"grpc://127.0.0.1:{port}")
            created = optuna.create_study(study_name="flaky", storage=ours)
            created.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        assert len(optuna.load_study(study_name="flaky", storage=served).trials) == 2
    finally:
        server.stop(grace=None)


OPEN_WHEN_TOLD = """
import pathlib, sys, time
import optuna
from search.tuning.store import storage
go = pathlib.Path(sys.argv[2])
while not go.exists():  # every opener waits at the line, then all start at once
    time.sleep(0.001)
opened = storage.open_storage(sys.argv[1])
optuna.create_study(study_name="s", storage=opened, load_if_exists=True)
"""


def test_openers_started_at_once_on_one_new_sqlite_file_all_open_it_and_it_stays(tmp_path):
    """Issue 44: two search.run started at once on a new study file both made Optuna's tables,
    both failed ("table studies already exists", "UNIQUE constraint failed"), and the file
    was removed as one SQLite could not create. Four real processes, released together (six
    failed on that code three times in three)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    url, go = f"sqlite:///{tmp_path / 'new.db'}", tmp_path / "go"
    openers = [
        subprocess.Popen([sys.executable, "-c", OPEN_WHEN_TOLD, url, str(go)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    go.touch()
    ended = [(opener.wait(timeout=120), opener.stderr.read()) for opener in openers]
    assert all(code == 0 for code, _ in ended), [err for _, err in ended]
    assert optuna.get_all_study_names(url) == ["s"]
    assert not list(tmp_path.glob("*.lock"))  # nothing left beside the study


def test_optuna_s_migration_scripts_are_read_once_a_process_and_new_storages_are_at_their_head(
    tmp_path,
):
    """Opening storages builds Optuna's alembic script directory once (storage.py); new
    SQLite files are still stamped at the head that alembic itself reads from Optuna's
    migration folder, the test PostgreSQL is read at it, and every revision is still known."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from optuna.storages._rdb import storage as rdb

    config = Config()
    config.set_main_option("script_location", str(Path(rdb.__file__).with_name("alembic")))
    reference = ScriptDirectory.from_config(config)  # alembic's own reading, not cached
    first, second = (storage.open_storage(f"sqlite:///{tmp_path / f'{n}.db'}") for n in "ab")
    managers = [opened._version_manager for opened in (first, second, postgres.storage())]
    assert managers[0]._create_alembic_script() is managers[1]._create_alembic_script()
    for manager in managers:
        assert manager.get_current_version() == reference.get_current_head()
        assert manager.get_all_versions() == [r.revision for r in reference.walk_revisions()]


def test_a_storage_that_cannot_be_opened_leaves_no_connection_for_the_garbage_collector():
    """A read-only open of a PostgreSQL database without Optuna's tables is refused; the
    connection its engine made on the way is closed then, not left for the garbage collector
    to warn about (psycopg's ResourceWarning) on the stderr of whatever the process does next."""
    import gc
    import warnings

    url = postgres.fresh_database("storage_test_empty")
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UsageError, match="holds no Optuna studies"):
            storage.open_storage(url, read_only=True)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught
