"""`python -m search.export`: a study's best trial (or --trial N, the --top K, or the --pareto
front of a multi-objective study) as a config file that `python -m search.train` retrains."""

import logging
from collections.abc import Sequence
from pathlib import Path

from search import cli
from search.tuning.records import ledger

FORMATS = ("json", "yaml")  # search.training.config.WRITERS, named without importing it


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.export",
        description="Write a trial's complete training config as YAML (or JSON).",
    )
    cli.add_study_arguments(parser)
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("best.yaml"), help="file (default best.yaml)"
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="file format (default: json if OUTPUT ends in .json, else yaml)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, help="export trial number N instead of the best")
    which.add_argument(
        "--top",
        type=int,
        help="export the K best trials as OUTPUT-1.yaml ... OUTPUT-K.yaml, best first",
    )
    which.add_argument(
        "--pareto",
        action="store_true",
        help="multi-objective studies: export every trial on the Pareto front as "
        "OUTPUT-1.yaml ... OUTPUT-N.yaml",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from registry import files
    from search.training import config
    from search.tuning import study
    from search.tuning.results import seed_selection, selection
    from search.tuning.store import storage

    file_format = args.format or ("json" if args.output.suffix == ".json" else "yaml")
    found = study.load(storage.open_storage(args.storage, read_only=True), args.study)
    trials = selection.choose_trials(found, args.trial, args.top, args.pareto)
    stale = seed_selection.outdated(found)
    if stale and args.trial is None and args.top is None and not args.pareto:
        logging.getLogger("search.export").warning(stale)
    several = args.top is not None or args.pareto
    paths = selection.output_paths(args.output, len(trials), several)
    for path in paths:  # all checked before any is written
        files.check_output(path)
    for trial, path in zip(trials, paths, strict=True):
        trial_config, provenance = selection.exported_config(found, trial)
        config.write_file(path, trial_config, provenance, file_format)
        values = zip(ledger.metric_names(found), trial.values, strict=True)
        shown = ", ".join(f"{name} {value:.4f}" for name, value in values)
        print(f"wrote {path}: trial {trial.number}, {shown}")
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.export")
