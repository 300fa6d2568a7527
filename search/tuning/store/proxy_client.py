"""Optuna's gRPC storage proxy as a study storage (`--storage grpc://HOST:PORT`), with the
liveness that the proxy lacks as shipped. Very many workers (hundreds) reach one PostgreSQL
through one proxy process, which holds a handful of connections.

Optuna's heartbeats live in RDBStorage only: behind the proxy a killed worker's trial would
stay RUNNING for ever. So here the proxy's storage is a heartbeat storage too (BeatingProxy):
Optuna's own heartbeat thread bumps a system attribute of the running trial (HEARTBEAT) every
heartbeat interval, and the proxy process, which holds
the real storage, watches them: a RUNNING trial whose beat has not changed for the study's
grace period, by the proxy's own clock (so no two hosts' clocks are compared), is failed and
re-run (execution/stale_watch.py) exactly as fail_stale_trials does with direct PostgreSQL. A write per
worker per interval is the cost: 200 workers at 60 s are 3.3 small writes a second."""

import contextlib
import functools
import json
from urllib.parse import urlsplit

from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat

from registry import RunFailure, UsageError

SCHEME = "grpc://"
DEFAULT_PORT = 13000  # Optuna's own default
HEARTBEAT = "proxy_heartbeat"
# gRPC's own retries (its service config) for the errors a busy or restarting proxy answers
# with before it has run the call: UNAVAILABLE (a connection reset, a full accept queue) and
# RESOURCE_EXHAUSTED. Seen under load: 33 of 200 workers met one with no outage at all. A call
# still failing after these attempts (about 3 s) is an outage, which the worker's loop waits
# out (--storage-patience).
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
}
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),  # Optuna's own setting
    ("grpc.enable_retries", 1),
    (
        "grpc.service_config",
        json.dumps(
            {
                "methodConfig": [
                    {"name": [{"service": "optuna.StorageService"}], "retryPolicy": RETRY_POLICY}
                ]
            }
        ),
    ),
]


def is_proxy_url(url: str) -> bool:
    return url.startswith(SCHEME)


def host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        port = -1
    if not parts.hostname or port <= 0 or parts.path not in ("", "/"):
        raise UsageError(f"malformed --storage URL '{url}'; a proxy's is grpc://HOST:PORT")
    return parts.hostname, port


def open_proxy(url: str, heartbeat_interval: int | None = None, timeout: float = 10) -> BaseStorage:
    """The storage that `python -m search.proxy` serves at grpc://HOST:PORT; with a
    `heartbeat_interval`, one whose running trials beat (beating_proxy)."""
    host, port = host_and_port(url)
    try:
        from optuna.storages import GrpcStorageProxy
    except ImportError as error:
        raise UsageError(
            f"--storage {url} needs grpcio and protobuf ({error.name}): pip install -e '.[proxy]'"
        ) from None
    proxy = beating_proxy(GrpcStorageProxy)(host=host, port=port)
    proxy.heartbeat_interval = heartbeat_interval
    try:
        proxy.wait_server_ready(timeout=timeout)
    except ConnectionError:
        raise RunFailure(
            f"cannot reach storage {url} within {timeout:g} s: is python -m search.proxy "
            "serving there?"
        ) from None
    return proxy


@functools.cache
def beating_proxy(grpc_storage_proxy: type) -> type:
    """Optuna's GrpcStorageProxy with liveness as a capability of the storage, as RDBStorage
    has it (Optuna's BaseHeartbeat): study.optimize then runs its own heartbeat thread for
    every trial, which here bumps the trial's HEARTBEAT system attribute. Stale trials are the
    proxy process's business (StaleTrialWatch, on its own clock): a worker finds none. Built
    on first use: grpcio is an extra."""

    class BeatingProxy(grpc_storage_proxy, BaseHeartbeat):
        heartbeat_interval: int | None = None

        def _setup(self) -> None:  # Optuna's, with a channel that retries transient errors
            import grpc
            from optuna.storages._grpc.auto_generated import api_pb2_grpc
            from optuna.storages._grpc.client import GrpcClientCache

            self._channel = grpc.insecure_channel(
                f"{self._host}:{self._port}", options=CHANNEL_OPTIONS
            )
            self._stub = api_pb2_grpc.StorageServiceStub(self._channel)
            self._cache = GrpcClientCache(self._stub)

        def record_heartbeat(self, trial_id: int) -> None:
            beats = self.__dict__.setdefault("beats", {})
            beats[trial_id] = beats.get(trial_id, 0) + 1
            with contextlib.suppress(Exception):  # a lost beat is the watcher's business
                self.set_trial_system_attr(trial_id, HEARTBEAT, beats[trial_id])

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            return []

        def get_heartbeat_interval(self) -> int | None:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self):
            return None

    return BeatingProxy
