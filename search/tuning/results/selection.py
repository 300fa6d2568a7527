"""Choosing trials of a study to export: the best (the final selection's winner once
search.final has run), the top K, the Pareto front of a multi-objective study, or one by
number; and the config file each becomes."""

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from registry import UsageError
from search.training import config
from search.tuning import study
from search.tuning.records import config_attrs, ledger
from search.tuning.results import seed_selection


def choose_trials(
    found: optuna.Study, number: int | None, top: int | None, pareto: bool
) -> list[FrozenTrial]:
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
    selected = seed_selection.recorded(found)
    if selected and top is None:  # the winner over several seeds, not the luckiest run
        return [found.trials[selected[0]["trial"]]]
    return ledger.best_first(complete, found.direction)[: top or 1]


def output_paths(output: Path, count: int, ranked: bool) -> list[Path]:
    if not ranked:
        return [output]
    return [
        output.with_name(f"{output.stem}-{rank}{output.suffix}") for rank in range(1, count + 1)
    ]


def exported_config(found: optuna.Study, trial: FrozenTrial) -> tuple[config.TrialConfig, dict]:
    """(the trial's TrialConfig, its provenance: study, trial, values, space, params)."""
    fields = config_attrs.stored(trial)
    if fields is None:
        raise UsageError(f"trial {trial.number} has no stored config (not run by search.run)")
    source = f"study {found.study_name} trial {trial.number}"
    exported = config.from_dict(fields, source=source)
    values: dict[str, Any] = dict(zip(ledger.metric_names(found), trial.values, strict=True))
    provenance = {
        "study": found.study_name,
        "trial": trial.number,
        **values,
        "space": study.settings_of(found).space,
        "params": trial.params,
    }
    row = next(
        (r for r in seed_selection.recorded(found) or [] if r["trial"] == trial.number), None
    )
    if row is not None:
        provenance["final_selection"] = {
            key: row[key] for key in ("seeds", "val_mean", "val_std", "test_mean", "test_std")
        }
    return exported, provenance
