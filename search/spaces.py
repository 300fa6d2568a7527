"""`python -m search.spaces [NAME...]`: the search spaces, one line each, then per space its
parameters, ranges and warm starts (what `search.run --list-spaces` prints); with
--write-warm-starts DIR, each warm start as a config file that search.train trains."""

from collections.abc import Sequence
from pathlib import Path

import spaces
from registry import UsageError, files
from search import cli


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.spaces",
        description="List the search spaces with their parameters, ranges and warm starts.",
    )
    parser.add_argument("names", nargs="*", help="only these spaces (default: all)")
    parser.add_argument(
        "--epochs", type=int, default=20, help="the per-trial budget the ranges are shown for"
    )
    parser.add_argument(
        "--space-module", help="import this module first (it registers spaces of its own)"
    )
    parser.add_argument(
        "--write-warm-starts",
        type=Path,
        metavar="DIR",
        help="write each warm start of the named spaces as DIR/<space>-<n>.yaml, for --epochs "
        "epochs on --dataset, to retrain with search.train (the reports' configs as they are)",
    )
    parser.add_argument(
        "--dataset", default="cifar10", help="with --write-warm-starts: the configs' dataset"
    )
    return parser


def write_warm_starts(names: Sequence[str], folder: Path, dataset: str, epochs: int) -> None:
    import optuna

    from search.training import config

    folder.mkdir(parents=True, exist_ok=True)
    context = spaces.SpaceContext(dataset, epochs, 0)
    for name in names:
        if name in spaces.FINE_TUNING:
            raise UsageError(f"space {name}'s warm starts need --init-from: run it with search.run")
        for number, start in enumerate(spaces.warm_starts(name), 1):
            chosen = spaces.get(name)(optuna.trial.FixedTrial(start.params), context)
            trial_config = config.validate(chosen, source=f"space {name}'s warm start {number}")
            path = folder / f"{name}-{number}.yaml"
            config.write_file(path, trial_config, {"space": name, "warm_start": start.source})
            print(f"wrote {path}: {start.source}")


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    cli.check_positive(args, "epochs")
    spaces.import_user_module(args.space_module)
    for name in args.names:
        spaces.get(name)  # an unknown name fails before anything is printed
    names = args.names or spaces.list_spaces()
    if args.write_warm_starts:
        files.check_folder(args.write_warm_starts)  # a file there is one line, not a traceback
        write_warm_starts(names, args.write_warm_starts, args.dataset, args.epochs)
        return 0
    print(spaces.describe.describe_all(names, args.epochs))
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.spaces")
