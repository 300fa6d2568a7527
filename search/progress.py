"""What a person sees while a search runs: a line per finished trial, then a summary."""

import time

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def count_by_state(study: optuna.Study) -> dict[TrialState, int]:
    counts = dict.fromkeys(TrialState, 0)
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    return counts


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no completed trial yet
        return None


class TrialPrinter:
    """Study callback: one line per finished trial with its state, value, epochs and time."""

    def __init__(self, target: int):
        self.target = target
        self.started = time.monotonic()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        counts = count_by_state(study)
        finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        epochs = trial.last_step or 0
        value = trial.value if trial.value is not None else trial.intermediate_values.get(epochs)
        shown = f"val_accuracy {value:.4f}" if value is not None else "no value"
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        best = best_trial(study)
        best_text = f"best {best.value:.4f} (trial {best.number})" if best else "no best yet"
        reason = trial.user_attrs.get("fail_reason", "")
        plural = "s" if epochs != 1 else ""
        line = (
            f"[{finished}/{self.target}] trial {trial.number} {trial.state.name:<8} {shown}  "
            f"{epochs} epoch{plural}  {seconds:.1f} s  | {best_text}  {reason}"
        )
        print(line.rstrip(), flush=True)


def summary(study: optuna.Study, storage_url: str, default_storage: str) -> str:
    counts = count_by_state(study)
    lines = [
        f"study {study.study_name}: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed"
    ]
    best = best_trial(study)
    if best is None:
        lines.append("no trial has completed yet")
    else:
        lines.append(f"best val_accuracy {best.value:.4f} (trial {best.number})")
        lines += [f"  {name} = {value}" for name, value in best.params.items()]
    storage_flag = "" if storage_url == default_storage else f" --storage {storage_url}"
    lines += [
        f"browse:  optuna-dashboard {storage_url}",
        f"export:  python -m search.export --study {study.study_name}{storage_flag} -o best.yaml",
    ]
    return "\n".join(lines)
