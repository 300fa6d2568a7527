"""How long a trial ran, from the times Optuna records: naive local times of the host that ran
it (datetime.now()), which jump an hour at a daylight-saving change. Read as they are, a trial
that ran across the autumn change ends "before" it started (a negative duration: a status
line of -3000 s, a report's bar drawn backwards, a log axis that drops the point) and one
across the spring change an hour too long. Each time is placed in this host's time zone (the
one the workers' hosts share, as they do a study's clock), and an end that reads earlier
than its start is the second of the hour the autumn change repeats (PEP 495's fold=1)."""

import datetime

from optuna.trial import FrozenTrial


def elapsed(start: datetime.datetime, end: datetime.datetime) -> datetime.timedelta:
    """end - start in real time, for two naive local times (aware ones as they are)."""
    if start.tzinfo is not None or end.tzinfo is not None:
        return end - start
    placed_start, placed_end = start.astimezone(), end.astimezone()
    if placed_end < placed_start:  # the repeated hour: the end lies in its second pass
        placed_end = end.replace(fold=1).astimezone()
    return placed_end - placed_start


def seconds(trial: FrozenTrial) -> float | None:
    """The trial's duration in seconds; None for one that has not ended (or not started)."""
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return elapsed(trial.datetime_start, trial.datetime_complete).total_seconds()
