"""What a person reads of a study: the summary at a search's end and search.status's view
(the line per finished trial is execution/live.py's)."""

import datetime
import shlex
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.tuning import DEFAULT_STORAGE
from search.tuning.execution import live
from search.tuning.execution.checkpoints import TrialCheckpoints
from search.tuning.records import clock, keys, ledger
from search.tuning.results import seed_selection
from search.tuning.store import proxy_client
from search.tuning.strategies import continuation, pbt


def summary(study: optuna.Study, storage_url: str) -> str:
    counts = ledger.count_by_state(study.get_trials(deepcopy=False))
    not_needed = sum(
        bool(t.user_attrs.get(keys.NOT_NEEDED))
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    )  # surplus trials that parallel workers started as the target was reached
    lines = [
        f"study {study.study_name}: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed"
        + (f" ({not_needed} of them not needed)" if not_needed else "")
    ]
    best = ledger.best(study)
    if len(study.directions) > 1:
        lines.append(live.describe_best(study))
        lines += [
            f"  trial {trial.number}: {live.format_values(ledger.metric_names(study), trial.values)}"
            for trial in sorted(study.best_trials, key=lambda t: t.number)
        ]
    elif best is None:
        lines.append("no trial has completed yet")
    else:
        lines.append(live.describe_best(study))
        lines += [f"  {name} = {value}" for name, value in best.params.items()]
    lines += paused_lines(study)
    lines += population_lines(study)
    lines += seed_selection.shown(study)
    output = ["-o", "front.yaml", "--pareto"] if len(study.directions) > 1 else ["-o", "best.yaml"]
    # optuna-dashboard reads the database itself, not the proxy in front of it
    database = (
        "DATABASE_URL" if proxy_client.is_proxy_url(storage_url) else shlex.quote(storage_url)
    )
    lines += [
        f"browse:  optuna-dashboard {database}",
        f"export:  {export_command(study.study_name, storage_url, output)}",
    ]
    return "\n".join(lines)


def population_lines(study: optuna.Study) -> list[str]:
    """With --scheduler pbt: the generations run and the exploits made (its trials that ended
    an interval are counted among the pruned above)."""
    rows = pbt.lineage_rows(study.get_trials(deepcopy=False))
    if not rows:
        return []
    generations = 1 + max(row["generation"] for row in rows)
    exploits = sum(row["donor"] is not None for row in rows)
    members = len({row["member"] for row in rows})
    return [
        f"population: {members} members, {generations} generation(s), {exploits} exploit(s) "
        "(a member's ended intervals count as pruned trials; search.report draws the lineage)"
    ]


def paused_lines(study: optuna.Study) -> list[str]:
    """With --pause-pruned: how many trials paused, how many were continued, and what the
    checkpoints of those still paused take on disk."""
    trials = study.get_trials(deepcopy=False)
    taken, waiting = ledger.continued(trials), continuation.paused(trials)
    if not taken and not waiting:
        return []
    ran = ledger.continuations_run(trials)
    queued = f", {len(taken - ran)} queued to continue" if taken - ran else ""
    root = study.user_attrs.get("checkpoint_dir", "")
    key = study.user_attrs.get("checkpoint_key", "")
    kept = TrialCheckpoints(Path(root), study.study_name, key).paused_bytes(trials) if root else 0
    return [
        f"paused: {len(taken) + len(waiting)} trial(s); {len(ran)} continued from their "
        f"checkpoints{queued}, {len(waiting)} still paused ({kept / 2**20:.1f} MiB of checkpoints)"
    ]


def export_command(study_name: str, storage_url: str, output: list[str]) -> str:
    """The search.export command line for a study, quoted for a shell: a name with a space or
    a ';' pastes as one argument."""
    words = ["python", "-m", "search.export", "--study", study_name]
    words += [] if storage_url == DEFAULT_STORAGE else ["--storage", storage_url]
    return shlex.join(words + output)


def describe_status(found: optuna.Study, now: datetime.datetime, target: int) -> str:
    """search.status's view: counts by state against the `target` of finished trials, the best
    so far, and who runs what."""
    counts = ledger.count_by_state(found.get_trials(deepcopy=False))
    lines = [
        f"study {found.study_name}: {ledger.finished(counts)}/{target} finished; "
        + ", ".join(f"{count} {state.name.lower()}" for state, count in counts.items())
    ]
    lines.append(live.describe_best(found))
    for trial in found.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        age = clock.elapsed(trial.datetime_start, now).total_seconds()
        epochs = trial.last_step or 0
        lines.append(
            f"  running trial {trial.number} on {trial.user_attrs.get(keys.WORKER, '?')} "
            f"({trial.user_attrs.get(keys.DEVICE, '?')}): {age:.0f} s, {epochs} epoch(s) reported"
        )
    lines += seed_selection.shown(found)
    return "\n".join(lines)
