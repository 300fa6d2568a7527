"""`python -m search.status --study NAME`: how far a study has got, and who is running what."""

import datetime
from collections.abc import Sequence

from optuna.trial import TrialState

from search import cli, progress, storage, study


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.status", description="Show a study's progress and running trials."
    )
    cli.add_study_arguments(parser)
    return parser


def describe(found, now: datetime.datetime) -> str:
    counts = progress.count_by_state(found)
    target = found.user_attrs.get("trials", "?")
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    lines = [
        f"study {found.study_name}: {finished}/{target} finished; "
        + ", ".join(f"{count} {state.name.lower()}" for state, count in counts.items())
    ]
    lines.append(progress.describe_best(found))
    for trial in found.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        age = (now - trial.datetime_start).total_seconds()
        epochs = trial.last_step or 0
        lines.append(
            f"  running trial {trial.number} on {trial.user_attrs.get('worker', '?')} "
            f"({trial.user_attrs.get('device', '?')}): {age:.0f} s, {epochs} epoch(s) reported"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    found = study.load(storage.open_storage(args.storage), args.study)
    print(describe(found, datetime.datetime.now()))
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.status")
