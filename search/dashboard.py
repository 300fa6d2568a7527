"""`python -m search.dashboard`: optuna-dashboard on the study storage, with the artifact store
that `search.train --attach` writes to, so retrained checkpoints show on their trials.

The same as `optuna-dashboard sqlite:///studies.db --artifact-dir artifacts`. It has no
authentication: keep it on localhost (the default host) or behind something that has.
"""

from collections.abc import Sequence
from pathlib import Path

from registry import UsageError
from search import cli

DEFAULT_ARTIFACT_DIR = Path("artifacts")


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.dashboard", description="Browse studies in optuna-dashboard."
    )
    cli.add_storage_argument(parser)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--artifact-dir",
        type=Path,
        default=DEFAULT_ARTIFACT_DIR,
        help=f"artifact store folder (default ./{DEFAULT_ARTIFACT_DIR})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, not {args.port}")
    from wsgiref.simple_server import make_server

    from optuna.artifacts import FileSystemArtifactStore

    from registry import files
    from search.tuning.store import faults, storage

    try:
        import optuna_dashboard
    except ImportError as error:  # a broken or half-removed install
        raise UsageError(
            f"optuna_dashboard cannot be imported ({faults.first_line(error)}); reinstall "
            "it: pip install --force-reinstall optuna-dashboard"
        ) from None

    study_storage = storage.open_storage(args.storage, create=False)
    files.check_folder(args.artifact_dir)
    app = optuna_dashboard.wsgi(
        study_storage, artifact_store=FileSystemArtifactStore(str(args.artifact_dir))
    )
    try:  # bound before anything is printed: a busy port is an error, not "listening"
        server = make_server(args.host, args.port, app)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {reason}") from None
    print(
        f"optuna-dashboard on http://{args.host}:{server.server_port}/ (Ctrl-C stops it)",
        flush=True,
    )
    return cli.serve_until_interrupted(server.serve_forever, server.server_close)


if __name__ == "__main__":
    cli.run_main(main, "search.dashboard")
