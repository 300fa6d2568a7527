"""What a worker does when a trial is cut off or the storage goes away: re-queue the trial in
hand to resume from its checkpoint, drop one that someone else ended, fail the orphans a lost
storage left RUNNING, and wait out an outage with backoff and a limit."""

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import optuna
from optuna.trial import TrialState

from registry import RunFailure, files
from search.tuning import study
from search.tuning.execution import retries
from search.tuning.execution.endings import CUT_OFF, TAKEN_AWAY
from search.tuning.records import keys, ledger
from search.tuning.store import faults

T = TypeVar("T")

log = logging.getLogger("search.worker")

POLL_SECONDS = 5  # how often an idle worker looks whether the study needs it again
# The longest a worker waits between two looks for a lost storage: it is back to work at most
# this long after the storage is (at 60 s, 75 s after a 150 s outage was seen); 200 workers
# looking every 30 s are 7 cheap calls a second.
MAX_BACKOFF_SECONDS = 30


class TrialRunner(Protocol):
    """What the loop runs: objective(trial) -> value(s), and the number of the trial it has
    in hand (None between trials), which the loop re-queues when a signal or an outage cuts
    it off."""

    in_hand: int | None

    def __call__(self, trial: optuna.Trial) -> float | Sequence[float]: ...


def in_hand(objective: TrialRunner, trial: optuna.Trial, run: Callable[[], object]):
    """run() with the trial in objective.in_hand; it stays there when a signal or an outage
    cuts the trial off (run_trials re-queues it) or someone else ended it (run_trials drops
    it), and is cleared otherwise."""
    objective.in_hand = trial.number
    try:
        values = run()
    except (*CUT_OFF, *TAKEN_AWAY):
        raise
    except BaseException:
        objective.in_hand = None
        raise
    objective.in_hand = None
    return values


# When this process first saw each unnamed RUNNING trial (its storage id and start), by its own
# monotonic clock: a trial's datetime_start is the asking host's local time, and a host whose
# clock is minutes off would otherwise find every trial another host has just asked
# "started minutes ago", and fail it before its worker could name itself
_UNNAMED_SINCE: dict[tuple, float] = {}


def fail_orphans(running: optuna.Study, grace_seconds: float) -> None:
    """Fail RUNNING trials that no worker ever started: a worker that loses the storage
    inside study.ask() can leave its new trial RUNNING with no heartbeat, which heartbeats
    never catch. A started trial names its worker within moments (search/objective.py); one
    this worker has seen unnamed for `grace_seconds` is an orphan."""
    now = time.monotonic()
    watched = {}
    try:
        for trial in running.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if keys.WORKER in trial.user_attrs:
                continue
            key = (trial._trial_id, trial.datetime_start)
            watched[key] = _UNNAMED_SINCE.get(key, now)
            if now - watched[key] < grace_seconds:
                continue
            ledger.fail(running, trial,
                        "orphaned: its worker lost the storage before the trial could start")  # fmt: skip
    finally:
        _UNNAMED_SINCE.clear()  # those named or ended since are no longer watched
        _UNNAMED_SINCE.update(watched)


class Outage:
    """A worker's wait for a lost storage: one line when it begins, one when it is over; looks
    that back off from POLL_SECONDS to MAX_BACKOFF_SECONDS with jitter (hundreds of workers
    do not all knock at the same instant when it returns); and after `patience` seconds
    (--storage-patience; 0: never) a RunFailure."""

    def __init__(self, patience: int):
        self.patience = patience
        self.began: float | None = None
        self.looks = 0

    def wait(self, lost: BaseException) -> None:
        now = time.monotonic()
        if self.began is None:
            self.began, self.looks = now, 0
            limit = f"up to {self.patience} s" if self.patience else "for as long as it takes"
            log.warning("lost the storage (%s); waiting %s for it (--storage-patience)",
                        faults.first_line(lost), limit)  # fmt: skip
        elif self.patience and now - self.began >= self.patience:
            raise RunFailure(
                f"lost the storage for good: nothing for {now - self.began:.0f} s "
                f"(--storage-patience {self.patience}): {faults.first_line(lost)}"
            ) from None
        else:
            log.debug("still no storage: %s", faults.first_line(lost))
        self.looks += 1
        pause = min(MAX_BACKOFF_SECONDS, POLL_SECONDS * 2 ** min(self.looks - 1, 8))
        if self.patience:
            pause = min(pause, max(0.0, self.began + self.patience - now))
        time.sleep(pause * random.uniform(0.5, 1.0))

    def over(self) -> None:
        log.warning("the storage is back after %.0f s", time.monotonic() - self.began)
        self.began = None


def patiently(read: Callable[[], T], outage: Outage) -> T:
    """`read()`, waiting out a lost storage as a running worker does (`outage`'s lines,
    backoff and patience): for what a worker reads before its trial loop, when its scheduler
    (re)starts it while the database or the proxy is away."""
    while True:
        try:
            found = read()
        except Exception as error:
            lost = faults.outage(error)
            if lost is None:
                raise
            outage.wait(lost)
            continue
        if outage.began is not None:
            outage.over()
        return found


def taken_away(running: optuna.Study, objective: TrialRunner) -> str | None:
    """If the trial in hand was ended by someone else (a false stale verdict on a live trial):
    what to say, having dropped it. Whoever ended it re-queues it as they would a dead
    worker's (the checkpoint it left stays), and this worker goes on to the next."""
    number = objective.in_hand
    if number is None:
        return None
    trial = running.get_trials(deepcopy=False)[number]
    if not trial.state.is_finished():
        return None
    objective.in_hand = None
    why = trial.user_attrs.get(keys.FAIL_REASON, "no reason recorded")
    return (
        f"trial {number} was marked {trial.state.name} by another process while this worker "
        f"ran it ({why}); dropped it, and going on"
    )


def requeue(running: optuna.Study, objective: TrialRunner, reason: str, tell: bool = True) -> bool:
    """Re-run the trial in hand, if any, from its last checkpoint (retries.retry_cut_off);
    whether it was re-queued (said in a line if `tell`). One whose end the outage kept Optuna
    from recording is still RUNNING: this worker ran it, so it fails it now, with `reason`,
    rather than leave it to the heartbeats' grace period."""
    number = objective.in_hand
    if number is None:
        return False
    trial = running.get_trials(deepcopy=False)[number]
    if trial.state == TrialState.RUNNING:  # unless the heartbeats were first
        ledger.fail(running, trial, reason)
    requeued = retries.retry_cut_off(running, number)
    if requeued:
        log.log(logging.INFO if tell else logging.DEBUG, "trial %d: %s; re-queued to resume",
                number, reason)  # fmt: skip
    objective.in_hand = None
    return requeued


def out_of_space(running: optuna.Study, objective: TrialRunner, error: files.OutOfSpace):
    """The full disk that stops this worker, the trial in hand re-queued to resume then."""
    number = objective.in_hand
    if requeue(running, objective, "cut off: no space left for its checkpoint", tell=False):
        return files.OutOfSpace(f"{error} (trial {number} resumes then)")
    return error


def interrupted(running: optuna.Study, objective: TrialRunner) -> None:
    """Ctrl-C or SIGTERM: the trial in hand re-queued, if the storage still answers."""
    try:
        requeue(running, objective, "was interrupted")
    except Exception as error:  # noqa: BLE001  stopping anyway; say what is left
        log.warning("could not re-queue trial %s: %s", objective.in_hand, faults.first_line(error))


def ride_out(running: optuna.Study, objective: TrialRunner, error: Exception, outage: Outage):
    """What the loop does with an error that is not the trial's: a trial someone else ended
    is dropped, a lost storage waited for; anything else is raised again."""
    if faults.finished_elsewhere(error):
        # the trial in hand was ended by another process (a false stale verdict) or the
        # queued trial this worker reached for was taken (a race)
        dropped = taken_away(running, objective)
        log.log(logging.WARNING if dropped else logging.DEBUG, "%s",
                dropped or f"taken first: {faults.first_line(error)}")  # fmt: skip
        return
    # The database went away (a restart, a maintenance window, a network blip). Pooled
    # connections are pre-pinged, so waiting and going on reconnects; the trial it cut off
    # keeps its checkpoint and is re-run when it is back.
    lost = faults.outage(error)
    if lost is None:
        if study.deleted(running):  # Optuna fails on it in odd ways (KeyError, or
            raise RunFailure(  # UnboundLocalError in its tell): say what happened
                f"study '{running.study_name}' was deleted while this worker ran it; stopped"
            ) from None
        raise error
    outage.wait(lost)
