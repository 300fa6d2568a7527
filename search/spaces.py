"""`python -m search.spaces [NAME...]`: the search spaces, one line each, then per space its
parameters, ranges and warm starts (what `search.run --list-spaces` prints)."""

from collections.abc import Sequence

import spaces
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    spaces.import_user_module(args.space_module)
    for name in args.names:
        spaces.get(name)  # an unknown name fails before anything is printed
    print(spaces.describe.describe_all(args.names or spaces.list_spaces(), args.epochs))
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.spaces")
