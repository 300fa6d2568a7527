"""`python -m search.worker --study NAME --storage URL`: join an existing study (started by
search.run), from this host or another, and run its trials (search/tuning/execution/worker_loop.py)."""

from collections.abc import Sequence

from registry import UsageError
from search import cli


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.worker",
        description="Join an existing study (started by search.run) and run its trials.",
    )
    cli.add_study_arguments(parser)
    cli.add_dataset_arguments(parser, dataset=False)
    cli.add_worker_arguments(parser)
    parser.add_argument(
        "--timeout", type=float, help="stop starting new trials after this many seconds"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per trial")
    parser.add_argument(
        "--slot", type=int, default=0, help="this worker's index on its host (seeds its sampler)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    cli.check_positive(args, "timeout")
    if args.slot < 0:
        raise UsageError(f"--slot must be 0 or more, not {args.slot}")
    from search.tuning.execution import launch, trial_loop, worker_loop
    from search.tuning.store import room

    slots = launch.plan_slots(args.device, args.gpus, args.workers_per_gpu)
    # the one read of them; a storage that cannot be reached now is one line and exit 1
    # (its scheduler starts it again), as at any start: a typo must not wait half an hour
    settings = trial_loop.read_settings(args.storage, args.study)
    room.check_connections(args.storage, len(slots))
    return worker_loop.run_workers(
        slots, args.storage, args.study, settings, args.data_dir, args.timeout, args.quiet,
        args.slot,
    )  # fmt: skip


if __name__ == "__main__":
    cli.run_main(main, "search.worker")
