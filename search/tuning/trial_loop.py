"""The loop of trials that a worker runs, whatever its objective: run trials of a study until
it holds its target of finished trials, exactly (no overshoot), re-queueing the trial that a
signal or a storage outage cut off, and riding out outages. It imports no torch: the scale
benchmark's stand-in workers (scale.py) run it by the hundred, the real ones (worker_loop.py)
with the trainer's objective."""

import contextlib
import dataclasses
import datetime
import gc
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import optuna
import sqlalchemy
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from registry import RunFailure, files
from registry.signals import interrupt_on_sigterm
from search.tuning import continuation, pbt, progress, retries, storage, study
from search.tuning.settings import StudySettings

log = logging.getLogger("search.worker")

MAX_CONSECUTIVE_FAILURES = 5
POLL_SECONDS = 5  # how often an idle worker looks whether the study needs it again
# The longest a worker waits between two looks for a lost storage: it is back to work at most
# this long after the storage is (at 60 s, 75 s after a 150 s outage was seen); 200 workers
# looking every 30 s are 7 cheap calls a second.
MAX_BACKOFF_SECONDS = 30
# What a claim counts ahead of it: queued trials too, since one is always run (run_some_trials)
# and a fresh trial created beside a queued re-run must not take its place as well.
IN_FLIGHT_OR_FINISHED = (
    TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING,
)  # fmt: skip


# Not the trial's fault: Ctrl-C or SIGTERM (interrupt_on_sigterm), the storage failed, or the
# disk its checkpoints go to is full.
CUT_OFF = (
    KeyboardInterrupt, sqlalchemy.exc.SQLAlchemyError, *storage.PROXY_ERRORS, files.OutOfSpace,
)  # fmt: skip
# Nor this: someone else recorded the trial's end while it ran (the proxy's stale watch, an
# operator, a clock hiccup), and the storage refuses what the worker then writes.
TAKEN_AWAY = (UpdateFinishedTrialError,)


class TrialFailed(Exception):
    """The trial could not train (out of memory, or a bug); it ends FAILED, the worker goes on."""


class Objective(Protocol):
    """What the loop runs: objective(trial) -> value(s), and the number of the trial it has
    in hand (None between trials), which the loop re-queues when a signal or an outage cuts
    it off."""

    in_hand: int | None

    def __call__(self, trial: optuna.Trial) -> float | Sequence[float]: ...


def in_hand(objective: Objective, trial: optuna.Trial, run: Callable[[], object]):
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


class FailureGuard:
    """Study callback: stop when trials keep failing (every config runs out of memory, say),
    instead of failing forever without finishing one."""

    def __init__(self, limit: int):
        self.limit = limit
        self.consecutive = 0

    def __call__(self, running, trial: FrozenTrial) -> None:
        if trial.user_attrs.get("not_needed"):
            return  # a surplus trial, failed on purpose: not a failure to train
        self.consecutive = self.consecutive + 1 if trial.state == TrialState.FAIL else 0
        if self.tripped:
            running.stop()

    @property
    def tripped(self) -> bool:
        return self.consecutive >= self.limit


def finished(counts: dict[TrialState, int]) -> int:
    return counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]


def out_of_time(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def out_of_epochs(running: optuna.Study, budget: int) -> bool:
    """Whether the study's trials have trained its epoch budget (0: none) in all."""
    return (
        bool(budget) and continuation.epochs_trained(running.get_trials(deepcopy=False)) >= budget
    )


class StopWhenEnoughInFlight:
    """Study callback: stop starting trials once finished plus running ones reach the target,
    or the trials have trained the epoch budget. Optuna's MaxTrialsCallback counts only
    finished trials, so N parallel workers overshoot by up to N-1 (optuna#3518)."""

    def __init__(self, target: int, epoch_budget: int = 0):
        self.target, self.epoch_budget = target, epoch_budget

    def __call__(self, running: optuna.Study, trial: FrozenTrial) -> None:
        if not has_room(running, self.target, self.epoch_budget):
            running.stop()


def has_room(running: optuna.Study, target: int, epoch_budget: int) -> bool:
    """Whether the study could use another trial: fewer than `target` finished or running,
    and epochs left in its budget."""
    counts = progress.count_by_state(running)
    in_flight = finished(counts) + counts[TrialState.RUNNING]
    return in_flight < target and not out_of_epochs(running, epoch_budget)


class Promoter:
    """Study callback in a study whose pruned trials pause (--pause-pruned): after each trial,
    queue a continuation of each paused trial that its rung now promotes and whose checkpoint
    is kept (`resumable`), while the study has room for it (continuation.promote)."""

    def __init__(self, resumable: Callable[[int], bool], target: int, epoch_budget: int):
        self.resumable, self.target, self.epoch_budget = resumable, target, epoch_budget

    def __call__(self, running: optuna.Study, trial: FrozenTrial | None = None) -> None:
        promoted = continuation.promote(
            running, self.resumable, lambda: has_room(running, self.target, self.epoch_budget)
        )
        for number in promoted:
            log.info("trial %d: its rung promotes it; queued to continue", number)


def claim_or_give_up(objective, target: int, population=None):
    """Workers that start trials at the same moment can still overshoot; trial numbers break
    the tie. A trial with `target` finished, running or queued trials numbered below it is not
    needed: it fails at once, untrained, with that reason, and its worker stops starting
    trials. In a population (pbt.Population), so is a fresh trial with the population's size
    of generation 0 ahead of it."""

    def claimed(trial: optuna.Trial) -> float:
        trials = trial.study.get_trials(deepcopy=False)
        taken = continuation.continued(trials)  # each counted as its continuation
        ahead = [t for t in trials if t.state in IN_FLIGHT_OR_FINISHED and t.number not in taken]
        limit = target
        if population is not None and pbt.generation_of(trial) is None:  # a fresh trial:
            ahead = [t for t in ahead if pbt.generation_of(t) in (0, None)]  # generation 0's
            limit = population.size
        if sum(other.number < trial.number for other in ahead) >= limit:
            trial.study.stop()
            not_needed(trial, f"not needed: {limit} earlier trials had finished or were under way")
        return objective(trial)

    return claimed


def not_needed(trial: optuna.Trial, reason: str) -> None:
    """End a surplus trial, untrained, with `reason`: another does its work (or the study has
    enough). It fails, marked so that nothing counts it as a failure to train."""
    trial.set_user_attr("fail_reason", reason)
    trial.set_user_attr("not_needed", True)
    raise TrialFailed(reason)


@dataclasses.dataclass(frozen=True)
class Joined:
    """A worker's hold on its study: the recorded settings and the study with its sampler and
    pruner, in a storage that keeps its running trials alive (heartbeats)."""

    settings: StudySettings
    study: optuna.Study


@contextlib.contextmanager
def join(storage_url: str, name: str, settings: StudySettings, slot: int) -> Iterator[Joined]:
    """Join study `name` (its recorded `settings`) as worker `slot` for as long as the block
    runs: SIGTERM interrupts like Ctrl-C from now on, and the storage is opened with the
    study's own heartbeat settings (and closed at the end: storage.kept_open)."""
    interrupt_on_sigterm()
    log.debug("study %s: %s", name, settings)
    with storage.kept_open(
        storage_url, settings.heartbeat_interval, settings.grace_period, create=False
    ) as opened:
        joined = Joined(settings, study.open_for_worker(opened, name, settings, slot))
        storage.check_room(opened, slot)
        yield joined


def read_settings(storage_url: str, name: str) -> StudySettings:
    """The study's recorded settings, read before the storage is opened with its heartbeat."""
    with storage.kept_open(storage_url, create=False) as plain:
        return study.settings(study.load(plain, name))


def fail_orphans(running: optuna.Study, grace_seconds: float) -> None:
    """Fail RUNNING trials that no worker ever started: a worker that loses the storage
    inside study.ask() can leave its new trial RUNNING with no heartbeat, which heartbeats
    never catch. A started trial names its worker within moments (search/objective.py)."""
    now = datetime.datetime.now()  # Optuna stores naive local times
    for trial in running.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start
        if "worker" in trial.user_attrs or (now - started).total_seconds() < grace_seconds:
            continue
        reason = "orphaned: its worker lost the storage before the trial could start"
        running._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        running.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def run_some_trials(
    running, objective, target, callbacks, poll_seconds, deadline, grace_seconds, epoch_budget=0,
    population=None,
) -> bool:  # fmt: skip
    """Run trials until the study needs none from this worker for now; False once the study
    has its target finished trials, or has trained its epoch budget. In a population
    (pbt.Population), its next generation is queued when the last one is complete, and a
    worker waits for it rather than sample a member beyond the population's size."""
    counts = progress.count_by_state(running)
    if finished(counts) >= target or out_of_epochs(running, epoch_budget):
        return False
    if population is None:
        idle = finished(counts) + counts[TrialState.RUNNING] >= target
        idle = idle and not counts[TrialState.WAITING]
    else:
        population.plan(running)
        trials = running.get_trials(deepcopy=False)
        if population.done(trials):
            return False
        idle = not population.has_work(trials)
    if idle:
        # Enough trials are running elsewhere; wait in case one dies or fails and the study
        # needs another. A dead one is failed here and re-queued (WAITING). A queued trial
        # is always taken (Optuna's ask() pops it first): a re-run queued just after a fresh
        # trial took the last place would wait for ever, so it runs, and claim_or_give_up
        # fails whichever of the two is surplus as not needed.
        time.sleep(poll_seconds)
        fail_stale_trials(running)
        fail_orphans(running, grace_seconds)
        return True
    stops = [StopWhenEnoughInFlight(target, epoch_budget)]
    if population is not None:  # the next generation first (before checkpoints are removed)
        stops = [PopulationSteward(population), *stops]
    running.optimize(
        claim_or_give_up(objective, target, population),
        timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
        catch=(TrialFailed,),
        callbacks=[*stops, *callbacks],
        gc_after_trial=True,
    )
    return True


class PopulationSteward:
    """Study callback in a population (--scheduler pbt): after each trial, queue the next
    generation if the last is complete, and stop starting trials when none is queued and
    generation 0 is full (the worker then waits for the generation under way to end)."""

    def __init__(self, population):
        self.population = population

    def __call__(self, running: optuna.Study, trial: FrozenTrial) -> None:
        self.population.plan(running)
        if not self.population.has_work(running.get_trials(deepcopy=False)):
            running.stop()


def run_trials(
    running: optuna.Study,
    objective: Objective,
    settings: StudySettings,
    timeout: float | None = None,
    output: str = "lines",
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    population=None,
) -> None:
    """Run trials of `running` until it holds settings.trials finished ones (or `timeout`
    seconds have passed, or trials keep failing); a population's (pbt.Population), until its
    last generation is complete."""
    target = settings.trials
    guard = FailureGuard(MAX_CONSECUTIVE_FAILURES)
    deadline = None if timeout is None else time.monotonic() + timeout
    finished_before = len(running.get_trials(deepcopy=False, states=progress.FINISHED))
    printer = progress.TrialPrinter(target, finished_before, output)
    callbacks = [printer, guard, *callbacks, SurvivorsFrozen()]  # last: after the others' work
    poll_seconds = min(POLL_SECONDS, settings.heartbeat_interval)
    outage = Outage(settings.storage_patience)
    with startup_heap_frozen():
        while not guard.tripped and not out_of_time(deadline):
            try:
                if outage.began is not None:
                    progress.count_by_state(running)  # one look: is the storage back?
                    outage.over()
                # a trial the outage cut off, at once: not a grace period later
                requeue(running, objective, "cut off: its worker lost the storage")
                if not run_some_trials(
                    running, objective, target, callbacks, poll_seconds, deadline,
                    settings.grace_period, settings.epoch_budget, population,
                ):  # fmt: skip
                    break
            except files.OutOfSpace as error:  # no checkpoint can be written: stop, resumable
                number = objective.in_hand
                if requeue(running, objective, "cut off: no space left for its checkpoint",
                           tell=False):  # fmt: skip
                    error = files.OutOfSpace(f"{error} (trial {number} resumes then)")
                raise error from None
            except KeyboardInterrupt:
                try:
                    requeue(running, objective, "was interrupted")
                except Exception as error:  # noqa: BLE001  stopping anyway; say what is left
                    log.warning("could not re-queue trial %s: %s", objective.in_hand, error)
                raise
            except Exception as error:
                if storage.finished_elsewhere(error):
                    # the trial in hand was ended by another process (a false stale verdict)
                    # or the queued trial this worker reached for was taken (a race)
                    dropped = taken_away(running, objective)
                    log.log(logging.WARNING if dropped else logging.DEBUG, "%s",
                            dropped or f"taken first: {storage.first_line(error)}")  # fmt: skip
                    continue
                # The database went away (a restart, a maintenance window, a network blip).
                # Pooled connections are pre-pinged, so waiting and going on reconnects; the
                # trial it cut off keeps its checkpoint and is re-run when it is back.
                lost = storage.outage(error)
                if lost is None:
                    if study.deleted(running):  # Optuna fails on it in odd ways (KeyError, or
                        raise RunFailure(  # UnboundLocalError in its tell): say what happened
                            f"study '{running.study_name}' was deleted while this worker ran "
                            "it; stopped"
                        ) from None
                    raise
                outage.wait(lost)
    printer.close()
    if guard.tripped:
        raise RunFailure(
            f"stopped after {guard.limit} failed trials in a row; see their fail_reason "
            "in the dashboard (a smaller model or batch, or another --device)"
        )


@contextlib.contextmanager
def startup_heap_frozen():
    """Optuna's gc_after_trial runs a full collection after every trial, which frees a failed
    trial's reference cycles and the (GPU) memory they hold. Walking every object of a worker
    with torch loaded took 0.16 s per trial on the 2-core CPU (BENCHMARKS.md), about 6% of a
    2.5 s GPU trial. What exists before the first trial (modules, the dataset) is frozen out of
    the collections, which then walk only what trials make; unfrozen after."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


SWEEP_TRIALS = 100  # trials between full collections of everything frozen (SurvivorsFrozen)


class SurvivorsFrozen:
    """An Optuna callback, and so run after each trial's collection: what survived the
    collection is alive, and is frozen out of the next ones, which then walk only what the
    next trial makes. Left in, the study's cached trials made each collection longer as the
    study grew: 2 ms a `fast` trial at its start, 18 ms by trial 1,000 (36 ms for `resnet`),
    and so on without end (BENCHMARKS.md). A cycle among frozen objects that dies later (an
    entry Dynamo's cache drops, say) is not collected while frozen, so every `sweep_every`
    trials all is thawed and collected once (the startup heap too: 0.16 s, under 2 ms a trial)
    and frozen again. Inside startup_heap_frozen, whose end thaws it all."""

    def __init__(self, sweep_every: int = SWEEP_TRIALS):
        self.sweep_every, self.trials = sweep_every, 0

    def __call__(self, study: optuna.Study | None = None, trial: FrozenTrial | None = None):
        self.trials += 1
        if self.trials % self.sweep_every == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()


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
                        storage.first_line(lost), limit)  # fmt: skip
        elif self.patience and now - self.began >= self.patience:
            raise RunFailure(
                f"lost the storage for good: nothing for {now - self.began:.0f} s "
                f"(--storage-patience {self.patience}): {storage.first_line(lost)}"
            ) from None
        else:
            log.debug("still no storage: %s", storage.first_line(lost))
        self.looks += 1
        pause = min(MAX_BACKOFF_SECONDS, POLL_SECONDS * 2 ** min(self.looks - 1, 8))
        if self.patience:
            pause = min(pause, max(0.0, self.began + self.patience - now))
        time.sleep(pause * random.uniform(0.5, 1.0))

    def over(self) -> None:
        log.warning("the storage is back after %.0f s", time.monotonic() - self.began)
        self.began = None


def taken_away(running: optuna.Study, objective: Objective) -> str | None:
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
    why = trial.user_attrs.get("fail_reason", "no reason recorded")
    return (
        f"trial {number} was marked {trial.state.name} by another process while this worker "
        f"ran it ({why}); dropped it, and going on"
    )


def requeue(running: optuna.Study, objective: Objective, reason: str, tell: bool = True) -> bool:
    """Re-run the trial in hand, if any, from its last checkpoint (retries.retry_cut_off);
    whether it was re-queued (said in a line if `tell`). One whose end the outage kept Optuna
    from recording is still RUNNING: this worker ran it, so it fails it now, with `reason`,
    rather than leave it to the heartbeats' grace period."""
    number = objective.in_hand
    if number is None:
        return False
    trial = running.get_trials(deepcopy=False)[number]
    if trial.state == TrialState.RUNNING:
        with contextlib.suppress(UpdateFinishedTrialError):  # the heartbeats were first
            running._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            running._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    requeued = retries.retry_cut_off(running, number)
    if requeued:
        log.log(logging.INFO if tell else logging.DEBUG, "trial %d: %s; re-queued to resume",
                number, reason)  # fmt: skip
    objective.in_hand = None
    return requeued
