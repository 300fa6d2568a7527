"""`python -m search.status --study NAME`: how far a study has got, and who is running what."""

import datetime
from collections.abc import Sequence

from search import cli


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.status", description="Show a study's progress and running trials."
    )
    cli.add_study_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from search.tuning import study
    from search.tuning.results import progress
    from search.tuning.store import storage

    found = study.load(storage.open_storage(args.storage, read_only=True), args.study)
    target = study.settings_of(found).trials  # a study search.run did not make is refused
    print(progress.describe_status(found, datetime.datetime.now(), target))
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.status")
