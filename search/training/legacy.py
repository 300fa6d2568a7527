"""What earlier versions wrote, read in this version's terms; each kind of conversion is said
once per process (on stderr, as `search.legacy: ...`).

Until 2026-12-04 a schedule's lengths were absolute: `step_epochs` and `cycle_epochs` in
epochs, exponential's `gamma` per epoch, reduce-on-plateau's `patience` in epochs. They are
now fractions of the phase the schedule runs in (optim.py), so that a retrain at other epochs
runs the trial's curve stretched. An old config is converted against the epochs its phases
had, which gives the same curve at those epochs: the run it described. A second phase that
kept the first's schedule without arguments of its own was given the first's lengths in
epochs; it is given them converted against its own epochs, explicitly. (A hand-written config
that named one of these schedules with no arguments at all took that version's defaults; it
now takes this one's.)

A trainer's state saved by that version (a trial's per-epoch checkpoint) holds its history
with `eval_accuracy` and `eval_loss`: in a trial, the validation split's."""

import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("search.legacy")

# schedule -> (its old argument, its new one, old value and the phase's epochs -> new value)
LENGTHS: dict[str, tuple[str, str, Callable[[float, int], float]]] = {
    "step": ("step_epochs", "step_fraction", lambda value, epochs: value / epochs),
    "cyclic": ("cycle_epochs", "cycle_fraction", lambda value, epochs: value / epochs),
    "exponential": ("gamma", "gamma_per_run", lambda value, epochs: value**epochs),
    "plateau": ("patience", "patience_fraction", lambda value, epochs: value / epochs),
}
_said: set[str] = set()


def say_once(kind: str, message: str) -> None:
    if kind not in _said:
        _said.add(kind)
        log.info("%s", message)


def phase_epochs(epochs: int, second_phase: Mapping[str, Any] | None) -> tuple[int, int]:
    """(the first phase's epochs, the second's), as that version split them."""
    if not second_phase or epochs < 2:
        return epochs, 0
    first = min(max(1, round(float(second_phase["start_fraction"]) * epochs)), epochs - 1)
    return first, epochs - first


def converted(schedule: Any, arguments: Any, epochs: int) -> dict[str, Any] | None:
    """A schedule's arguments with its old length as the new fraction, or None if they hold
    none (or are not what a config holds: validation says so)."""
    if schedule not in LENGTHS or not isinstance(arguments, Mapping):
        return None
    old, new, convert = LENGTHS[schedule]
    if old not in arguments or epochs < 1:
        return None
    try:
        value = convert(float(arguments[old]), epochs)
    except (TypeError, ValueError):
        return None
    return {new if key == old else key: value if key == old else item
            for key, item in arguments.items()}  # fmt: skip


def upgraded_config(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A config's fields with any schedule length in epochs as a fraction of its phase."""
    values = dict(values)
    second = values.get("second_phase")
    second = dict(second) if isinstance(second, Mapping) and second else None
    try:
        epochs = int(values.get("epochs", 10))  # TrialConfig's default
        first_epochs, second_epochs = phase_epochs(epochs, second)
    except (TypeError, ValueError, KeyError):
        return values  # malformed: validation names the problem
    schedule = values.get("schedule", "onecycle")
    arguments = values.get("schedule_args", {})
    changes = []
    first = converted(schedule, arguments, first_epochs)
    if first is not None:
        values["schedule_args"] = first
        changes.append(f"schedule_args.{LENGTHS[schedule][0]}")
    if second is not None and second_epochs:
        second_schedule = second.get("schedule", schedule)
        inherits = "schedule_args" not in second and second_schedule == schedule
        own = arguments if inherits else second.get("schedule_args", {})
        upgraded_second = converted(second_schedule, own, second_epochs)
        if upgraded_second is not None:
            second["schedule_args"] = upgraded_second
            values["second_phase"] = second
            changes.append(f"second_phase.schedule_args.{LENGTHS[second_schedule][0]}")
    if changes:
        say_once(
            "schedule lengths",
            f"{source} was written by an earlier version: its {', '.join(changes)} "
            "(in epochs) read as fractions of the phase they run in, the same run at its "
            "epochs and stretched at others",
        )
    return values


def upgraded_history(history: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A saved trainer state's per-epoch results: eval_accuracy and eval_loss were the
    validation split's in a trial (the only kind of run that checkpoints every epoch)."""
    renamed = {"eval_accuracy": "val_accuracy", "eval_loss": "val_loss"}
    return [{renamed.get(key, key): value for key, value in epoch.items()} for epoch in history]
