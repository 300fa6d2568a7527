"""The final selection: a study's best trial is one lucky seed on one validation split, and the
top few are usually within that noise. Here each of the top K trials is retrained with S seeds
(the same S for each, so they are compared on equal draws) and ranked by its mean validation
accuracy. Each retrain also reads the test set, as information only: the ranking, like the
search, never sees it (README, "Choose the winner over several seeds"). The table is recorded
on the study, where search.export takes the winner from, and search.status, search.report and
the dashboard show it."""

import statistics

import optuna
from optuna.trial import TrialState

from registry import UsageError
from search.tuning.records import ledger

RECORD = "final_selection"  # the study user attribute that holds the table
CHOSEN_AMONG = "final_selection_complete"  # how many complete trials the study had then
NOTE_HEADING = "## Final selection"


def top_trials(found: optuna.Study, top: int) -> list[optuna.trial.FrozenTrial]:
    if len(found.directions) > 1:
        raise UsageError(
            f"study {found.study_name} has several objectives: its Pareto front has no single "
            "winner to select (search.export --pareto)"
        )
    complete = found.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise UsageError(f"study {found.study_name} has no complete trial yet; run trials first")
    return ledger.best_first(complete, found.direction)[:top]


def rank(found: optuna.Study, runs: list) -> list[dict]:
    """One row per trial from seed_runs.Run's, best mean validation accuracy first."""
    rows = []
    for number in dict.fromkeys(run.trial for run in runs):
        mine = [run for run in runs if run.trial == number]
        val = [run.val_accuracy for run in mine]
        test = [run.test_accuracy for run in mine]
        rows.append(
            {
                "trial": number,
                "search_val_accuracy": found.trials[number].value,
                "seeds": [run.seed for run in mine],
                "val_accuracies": val,
                "val_mean": statistics.mean(val),
                "val_std": statistics.stdev(val) if len(val) > 1 else 0.0,
                "test_accuracies": test,
                "test_mean": statistics.mean(test),
                "test_std": statistics.stdev(test) if len(test) > 1 else 0.0,
            }
        )
    return sorted(rows, key=lambda row: row["val_mean"], reverse=True)


def format_table(rows: list[dict]) -> str:
    """Markdown: the ranked trials with mean +/- standard deviation over their seeds."""
    lines = [
        f"{NOTE_HEADING} (each of the top {len(rows)} trials retrained with "
        f"{len(rows[0]['seeds'])} seeds; ranked by mean validation accuracy, the test set for "
        "information only)",
        "",
        "| rank | trial | search val | val mean ± std | test mean ± std |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rank_number, row in enumerate(rows, 1):
        lines.append(
            f"| {rank_number} | {row['trial']} | {row['search_val_accuracy']:.4f} | "
            f"{row['val_mean']:.4f} ± {row['val_std']:.4f} | "
            f"{row['test_mean']:.4f} ± {row['test_std']:.4f} |"
        )
    return "\n".join(lines)


def record(found: optuna.Study, rows: list[dict]) -> None:
    """On the study: the table as a user attribute, and as a section of its dashboard note."""
    import optuna_dashboard  # here: search.status reads the table without the dashboard

    found.set_user_attr(RECORD, rows)
    found.set_user_attr(CHOSEN_AMONG, complete_count(found))
    note = optuna_dashboard.get_note(found) or ""
    kept = note.split(NOTE_HEADING)[0].rstrip()
    optuna_dashboard.save_note(found, f"{kept}\n\n{format_table(rows)}\n".lstrip())


def complete_count(found: optuna.Study) -> int:
    return len(found.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def recorded(found: optuna.Study) -> list[dict] | None:
    """The final selection's table, unless trials have completed since it was made: one of
    them may beat its winner, so export then takes the best trial, as with no selection."""
    return None if outdated(found) else found.user_attrs.get(RECORD)


def outdated(found: optuna.Study) -> str | None:
    """A line saying the final selection is out of date, or None if it is not (or there is
    none)."""
    attributes = found.user_attrs
    if RECORD not in attributes:
        return None
    complete = complete_count(found)
    if attributes.get(CHOSEN_AMONG) == complete:
        return None
    return (
        f"the final selection chose among {attributes.get(CHOSEN_AMONG, 'fewer')} complete "
        f"trials and the study now has {complete}: run python -m search.final again (until "
        "then the best single trial is exported)"
    )


def shown(found: optuna.Study) -> list[str]:
    """What search.status, the run summary and search.report show of the final selection: its
    table, or the line that says it is out of date."""
    stale = outdated(found)
    if stale:
        return [stale]
    rows = found.user_attrs.get(RECORD)
    return [format_table(rows)] if rows else []
