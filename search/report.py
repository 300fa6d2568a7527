"""`python -m search.report --study NAME -o report.html`: one self-contained HTML page of a
study (search/tuning/results/study_report.py)."""

import warnings
from collections.abc import Sequence
from pathlib import Path

from search import cli


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.report", description="Write a study as one self-contained HTML page."
    )
    cli.add_study_arguments(parser)
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help="file (default report.html)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from registry import files
    from search.tuning import study
    from search.tuning.results import study_report
    from search.tuning.store import storage

    files.check_output(args.output)  # never over the study storage it reads, say
    found = study.load(storage.open_storage(args.storage, read_only=True), args.study)
    with warnings.catch_warnings():  # Optuna's plots warn of what a small study lacks
        warnings.simplefilter("ignore")
        page = study_report.render(found)
    files.write_text(args.output, page)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.report")
