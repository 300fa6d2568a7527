"""`python -m search.proxy --storage postgresql://...`: serve a study storage to very many
workers through Optuna's gRPC storage proxy; workers take `--storage grpc://HOST:PORT`.

Hundreds of workers then share the proxy's few database connections instead of holding two
each. The proxy also keeps them alive as direct PostgreSQL does: it fails and re-runs the
trial of a worker that died behind it (search/tuning/execution/stale_watch.py). Needs the
proxy extra: pip install -e '.[proxy]'. Like the dashboard it has no authentication: serve it
on a network that only the workers reach.
"""

from collections.abc import Sequence

from registry import UsageError
from search import cli


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.proxy",
        description="Serve a study storage to many workers (--storage grpc://HOST:PORT).",
    )
    cli.add_storage_argument(parser, "the database served: ")
    parser.add_argument(
        "--host",
        default="localhost",
        help="address to serve on (default localhost; 0.0.0.0 for workers on other hosts)",
    )
    parser.add_argument("--port", type=int, default=13000, help="port (default 13000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not 0 < args.port <= 65535:
        raise UsageError(f"--port must be 1 to 65535, not {args.port}")
    import threading

    import optuna

    from search.tuning.execution import retries, stale_watch
    from search.tuning.store import proxy_client, storage

    if proxy_client.is_proxy_url(args.storage):
        raise UsageError("--storage: the proxy serves a database, not another proxy")
    try:
        from optuna.storages._grpc.server import make_server
    except ImportError as error:
        raise UsageError(
            f"the proxy needs grpcio and protobuf ({error.name}): pip install -e '.[proxy]'"
        ) from None
    # Optuna's advice for the proxy: its in-process cache in front of the RDB (get_storage).
    served = optuna.storages.get_storage(
        storage.open_storage(args.storage, create=False, on_stale=retries.retry)
    )
    try:  # bound before anything is printed: a busy port is an error, not "serving"
        server = make_server(served, args.host, args.port, None)
        server.start()
    except RuntimeError as error:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {error}") from None
    stop = threading.Event()
    watch = threading.Thread(
        target=stale_watch.StaleTrialWatch(served).run,
        args=(stop,),
        name="stale-trials",
        daemon=True,
    )
    watch.start()
    print(
        f"serving {args.storage} to workers at grpc://{args.host}:{args.port} "
        "(--storage grpc://HOST:PORT; Ctrl-C stops it)",
        flush=True,
    )

    def close() -> None:
        stop.set()
        server.stop(grace=None)

    return cli.serve_until_interrupted(server.wait_for_termination, close)


if __name__ == "__main__":
    cli.run_main(main, "search.proxy")
