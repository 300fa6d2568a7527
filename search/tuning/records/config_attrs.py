"""A trial's TrialConfig as user attributes that optuna-dashboard shows whole: it cuts an
attribute at 1,024 characters, and a whole config runs to 1,500. `config` holds the plain
fields; each nested field that is not empty (model_args, augment, second_phase, changes,
...) is an attribute of its own, `config.augment`, each far below the limit (tests/test_config_attrs.py
checks every space's configs). The same attributes are columns of study.trials_dataframe()."""

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.training.config import FIELD_TYPES, TrialConfig

PREFIX = "config."


def record(trial: optuna.Trial, trial_config: TrialConfig) -> None:
    plain, nested = split(trial_config)
    trial.set_user_attr("config", plain)
    for field, value in nested.items():
        trial.set_user_attr(PREFIX + field, value)


def split(trial_config: TrialConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the plain fields, the nested fields that are not empty)."""
    fields = trial_config.to_dict()
    nested = {key: value for key, value in fields.items()
              if isinstance(value, dict) or key == "changes"}  # fmt: skip
    plain = {key: value for key, value in fields.items() if key not in nested}
    return plain, {key: value for key, value in nested.items() if value}


def stored(trial: FrozenTrial) -> dict[str, Any] | None:
    """The config's fields as a trial holds them (studies written before the split hold the
    whole config in `config`); None if the trial has none."""
    if "config" not in trial.user_attrs:
        return None
    empty = {field: {} for field, kind in FIELD_TYPES.items() if kind is dict}
    empty["changes"] = []
    nested = {key.removeprefix(PREFIX): value for key, value in trial.user_attrs.items()
              if key.startswith(PREFIX)}  # fmt: skip
    return {**empty, **trial.user_attrs["config"], **nested}
