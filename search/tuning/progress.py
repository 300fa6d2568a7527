"""What a person sees while a search runs: a line per finished trial, then a summary."""

import datetime
import shlex
import sys
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from search.tuning import DEFAULT_STORAGE, continuation, grpc_proxy, pbt, seed_selection, storage
from search.tuning.trial_checkpoints import TrialCheckpoints

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DONE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def count_by_state(study: optuna.Study) -> dict[TrialState, int]:
    """Trials by state, each run once: a paused trial that a continuation has taken over is
    counted as that continuation (continuation.py)."""
    trials = study.get_trials(deepcopy=False)
    taken = continuation.continued(trials)
    counts = dict.fromkeys(TrialState, 0)
    for trial in trials:
        if trial.number not in taken:
            counts[trial.state] += 1
    return counts


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best trial of a single-objective study (None before one completes, and for a
    multi-objective study, which has a Pareto front instead)."""
    if len(study.directions) > 1:
        return None
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


def metric_names(study: optuna.Study) -> list[str]:
    return study.metric_names or [f"value{i}" for i in range(len(study.directions))]


def format_values(names: list[str], values: list[float]) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in zip(names, values, strict=True))


def describe_best(study: optuna.Study) -> str:
    """'best val_accuracy 0.91 (trial 7)', or the Pareto front's size for several objectives."""
    if len(study.directions) > 1:
        front = study.best_trials
        return f"Pareto front: {len(front)} trial(s)" if front else "no Pareto front yet"
    best = best_trial(study)
    return f"best val_accuracy {best.value:.4f} (trial {best.number})" if best else "no best yet"


def output_mode(quiet: bool) -> str:
    """quiet: nothing per trial; live: a progress bar with a line per trial, on a terminal;
    lines: plain lines (logs, pipes, CI)."""
    if quiet:
        return "quiet"
    return "live" if sys.stdout.isatty() else "lines"


class TrialPrinter:
    """Study callback: a line per finished trial (state, value, epochs, time, best so far);
    in live mode also a tqdm bar with the pruned and failed counts and the ETA."""

    def __init__(self, target: int, finished_before: int, mode: str):
        self.target = target
        self.mode = mode
        self.bar = (
            tqdm(total=target, initial=finished_before, unit="trial", dynamic_ncols=True)
            if mode == "live"
            else None
        )

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.mode == "quiet":
            return
        counts = count_by_state(study)
        finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        # A multi-objective trial reports no epochs to Optuna; the objective records them.
        epochs = trial.last_step or trial.user_attrs.get("epochs_run", 0)
        if trial.values is not None:
            shown = format_values(metric_names(study), trial.values)
        elif epochs in trial.intermediate_values:
            shown = f"val_accuracy {trial.intermediate_values[epochs]:.4f}"
        else:
            shown = "no value"
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        best_text = describe_best(study)
        reason = trial.user_attrs.get("fail_reason", "")
        plural = "s" if epochs != 1 else ""
        state = "PAUSED" if continuation.PAUSED in trial.user_attrs else trial.state.name
        line = (
            f"[{finished}/{self.target}] trial {trial.number}{continuation.described(trial)} "
            f"{state:<8} {shown}  "
            f"{epochs} epoch{plural}  {seconds:.1f} s  | {best_text}  {reason}"
        ).rstrip()
        if self.bar is None:
            print(line, flush=True)
            return
        self.bar.write(line)
        self.bar.n = min(finished, self.target)
        self.bar.set_postfix_str(
            f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed, {best_text}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class StudyWatcher:
    """For a parent whose workers are other processes: feeds every trial that finished since
    the last look to a TrialPrinter, as the workers' own callbacks would have."""

    def __init__(self, study: optuna.Study, printer: TrialPrinter):
        self.study = study
        self.printer = printer
        self.seen = {t.number for t in study.get_trials(deepcopy=False, states=DONE)}

    def __call__(self) -> None:
        try:
            for trial in self.study.get_trials(deepcopy=False, states=DONE):
                if trial.number not in self.seen:
                    self.printer(self.study, trial)  # it reads the study too
                    self.seen.add(trial.number)
        except Exception as error:
            if storage.outage(error) is None:
                raise
            # the storage is away (the database restarting, the proxy down: seen at 150 s);
            # the workers ride it out, and the next look catches up


def summary(study: optuna.Study, storage_url: str) -> str:
    counts = count_by_state(study)
    not_needed = sum(
        bool(t.user_attrs.get("not_needed"))
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    )  # surplus trials that parallel workers started as the target was reached
    lines = [
        f"study {study.study_name}: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed"
        + (f" ({not_needed} of them not needed)" if not_needed else "")
    ]
    best = best_trial(study)
    if len(study.directions) > 1:
        lines.append(describe_best(study))
        lines += [
            f"  trial {trial.number}: {format_values(metric_names(study), trial.values)}"
            for trial in sorted(study.best_trials, key=lambda t: t.number)
        ]
    elif best is None:
        lines.append("no trial has completed yet")
    else:
        lines.append(describe_best(study))
        lines += [f"  {name} = {value}" for name, value in best.params.items()]
    lines += paused_lines(study)
    lines += population_lines(study)
    lines += seed_selection.shown(study)
    output = ["-o", "front.yaml", "--pareto"] if len(study.directions) > 1 else ["-o", "best.yaml"]
    # optuna-dashboard reads the database itself, not the proxy in front of it
    database = "DATABASE_URL" if grpc_proxy.is_proxy_url(storage_url) else shlex.quote(storage_url)
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
    taken, waiting = continuation.continued(trials), continuation.paused(trials)
    if not taken and not waiting:
        return []
    root = study.user_attrs.get("checkpoint_dir", "")
    key = study.user_attrs.get("checkpoint_key", "")
    kept = TrialCheckpoints(Path(root), study.study_name, key).paused_bytes(trials) if root else 0
    return [
        f"paused: {len(taken) + len(waiting)} trial(s); {len(taken)} continued from their "
        f"checkpoints, {len(waiting)} still paused ({kept / 2**20:.1f} MiB of checkpoints)"
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
    counts = count_by_state(found)
    finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    lines = [
        f"study {found.study_name}: {finished}/{target} finished; "
        + ", ".join(f"{count} {state.name.lower()}" for state, count in counts.items())
    ]
    lines.append(describe_best(found))
    for trial in found.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        age = (now - trial.datetime_start).total_seconds()
        epochs = trial.last_step or 0
        lines.append(
            f"  running trial {trial.number} on {trial.user_attrs.get('worker', '?')} "
            f"({trial.user_attrs.get('device', '?')}): {age:.0f} s, {epochs} epoch(s) reported"
        )
    lines += seed_selection.shown(found)
    return "\n".join(lines)
