"""`python -m search.export`: a study's best trial (or --trial N, the --top K, or the --pareto
front of a multi-objective study) as a config file that `python -m search.train` retrains."""

from collections.abc import Sequence
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from search import cli, config, progress, storage, study
from search.errors import UsageError


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
        choices=sorted(config.WRITERS),
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


def choose_trials(found, number: int | None, top: int | None, pareto: bool) -> list[FrozenTrial]:
    trials = found.get_trials(deepcopy=False)
    multi_objective = len(found.directions) > 1
    if pareto != multi_objective and number is None:
        raise UsageError(
            f"study {found.study_name} has {len(found.directions)} objective(s): "
            + ("use --pareto (or --trial N)" if multi_objective else "--pareto needs several")
        )
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if number is not None:
        chosen = [t for t in trials if t.number == number]
        if not chosen:
            raise UsageError(f"the study has no trial {number} (it has 0 to {len(trials) - 1})")
        if chosen[0].state != TrialState.COMPLETE:
            raise UsageError(f"trial {number} is {chosen[0].state.name}, not COMPLETE")
        return chosen
    if not complete:
        raise UsageError("the study has no complete trial yet; run more trials first")
    if pareto:
        return sorted(found.best_trials, key=lambda t: t.number)
    if top is not None and top < 1:
        raise UsageError("--top must be at least 1")
    return sorted(complete, key=lambda t: t.value, reverse=True)[: top or 1]


def output_paths(output: Path, count: int, ranked: bool) -> list[Path]:
    if not ranked:
        return [output]
    return [
        output.with_name(f"{output.stem}-{rank}{output.suffix}") for rank in range(1, count + 1)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    file_format = args.format or ("json" if args.output.suffix == ".json" else "yaml")
    found = study.load(storage.open_storage(args.storage), args.study)
    trials = choose_trials(found, args.trial, args.top, args.pareto)
    several = args.top is not None or args.pareto
    for trial, path in zip(trials, output_paths(args.output, len(trials), several), strict=True):
        if "config" not in trial.user_attrs:
            raise UsageError(f"trial {trial.number} has no stored config (not run by search.run)")
        source = f"study {args.study} trial {trial.number}"
        trial_config = config.from_dict(trial.user_attrs["config"], source=source)
        values = dict(zip(progress.metric_names(found), trial.values, strict=True))
        provenance = {
            "study": args.study,
            "trial": trial.number,
            **values,
            "space": found.user_attrs.get("space"),
            "params": trial.params,
        }
        config.write_file(path, trial_config, provenance, file_format)
        shown = ", ".join(f"{name} {value:.4f}" for name, value in values.items())
        print(f"wrote {path}: trial {trial.number}, {shown}")
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.export")
