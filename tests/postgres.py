"""The test PostgreSQL (127.0.0.1:5432, trust auth, database test), read by the test process
without holding connections. optuna.load_study(storage=URL) builds an engine whose pooled
connection stays open until the garbage collector breaks the storage's reference cycle: a test
that polls a study every 0.2 s held dozens of idle connections, and beside its workers ran the
server out of them ("too many clients already"; two test_worker tests failed so in CI). With
no pool, each query's connection closes when it returns."""

import optuna
import psycopg
import sqlalchemy
from optuna.storages import RDBStorage

URL = "postgresql://postgres@127.0.0.1:5432/test"


def storage() -> RDBStorage:
    return RDBStorage(URL, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool})


def load_study(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage())


def delete_study(name: str) -> None:
    optuna.delete_study(study_name=name, storage=storage())


def database_url(name: str) -> str:
    """The URL of another database on the test server, as the test one's."""
    return URL.rsplit("/", 1)[0] + f"/{name}"


def fresh_database(name: str) -> str:
    """An empty database `name` on the test server (dropped first, cutting any connection to
    it); its URL."""
    with psycopg.connect(URL, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    return database_url(name)
