"""The loop of trials that a worker runs, whatever its objective: run trials of a study until
it holds its target of finished trials, exactly (no overshoot: claims.py), re-queueing the
trial that a signal or a storage outage cut off, and riding out outages (recovery.py). It
imports no torch: the scale benchmark's stand-in workers (scale.py) run it by the hundred,
the real ones (worker_loop.py) with the trainer's objective."""

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from registry import RunFailure, files
from registry.options import OptionGroup, check_positive, flag
from registry.signals import interrupt_on_sigterm
from search.tuning import study
from search.tuning.execution import claims, live, recovery, retries
from search.tuning.execution.endings import TrialFailed
from search.tuning.execution.memory import SurvivorsFrozen, startup_heap_frozen
from search.tuning.records import keys, ledger
from search.tuning.records.settings import StudySettings
from search.tuning.store import room, storage
from search.tuning.strategies import strategy
from search.tuning.strategies.scheduler import Next, Scheduler

log = logging.getLogger("search.worker")

MAX_CONSECUTIVE_FAILURES = 5


@dataclasses.dataclass(frozen=True)
class Budget(OptionGroup):
    """How much a study runs: finished trials, epochs trained, and this run's seconds."""

    title: ClassVar[str] = "budget"

    trials: int = flag(
        100, type=int,
        help="finished (complete or pruned) trials wanted in the study in total, across all "
        "workers and runs (default 100)",
    )  # fmt: skip
    epoch_budget: int = flag(
        0, type=int, metavar="E",
        help="stop starting trials once the study's trials have trained E epochs in all (each "
        "epoch once: a resumed or continued trial's earlier epochs are not counted again), "
        "whichever of this and --trials comes first (default 0: no limit)",
    )  # fmt: skip
    timeout: float | None = flag(
        None, type=float, help="stop starting new trials after this many seconds"
    )

    def check(self, given: Mapping[str, Any]) -> None:
        check_positive(given, "trials", "timeout")

    def settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        return {"trials": self.trials, "epoch_budget": self.epoch_budget}

    def run_options(self) -> dict[str, Any]:
        return {"timeout": self.timeout}


def out_of_time(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class FailureGuard:
    """Study callback: stop when trials keep failing (every config runs out of memory, say),
    instead of failing forever without finishing one."""

    def __init__(self, limit: int):
        self.limit = limit
        self.consecutive = 0
        self.last_reason = ""

    def __call__(self, running, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(keys.NOT_NEEDED):
            return  # a surplus trial, failed on purpose: not a failure to train
        self.consecutive = self.consecutive + 1 if trial.state == TrialState.FAIL else 0
        self.last_reason = trial.user_attrs.get(keys.FAIL_REASON, "")
        if self.tripped:
            running.stop()

    @property
    def tripped(self) -> bool:
        return self.consecutive >= self.limit


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
        storage_url, settings.heartbeat_interval, settings.grace_period, create=False,
        on_stale=retries.retry,
    ) as opened:  # fmt: skip
        joined = Joined(settings, study.open_for_worker(opened, name, settings, slot))
        room.check_room(opened, slot)
        yield joined


def read_settings(storage_url: str, name: str) -> StudySettings:
    """The study's recorded settings, read before the storage is opened with its heartbeat."""
    with storage.kept_open(storage_url, create=False) as plain:
        return study.settings_of(study.load(plain, name))


def run_some_trials(
    running, objective, scheduler: Scheduler, callbacks, poll_seconds, deadline, grace_seconds
) -> bool:
    """Run trials until the study needs none from this worker for now; False once its
    scheduler says it holds what it is run for."""
    verdict = scheduler.next(running)
    if verdict is Next.DONE:
        return False
    if verdict is Next.WAIT:
        # Enough trials are running elsewhere; wait in case one dies or fails and the study
        # needs another. A dead one is failed here and re-queued (WAITING), which a worker
        # then takes first (Optuna's ask() pops it), and the claim fails whichever of it and
        # a fresh trial is surplus as not needed.
        time.sleep(poll_seconds)
        fail_stale_trials(running)
        recovery.fail_orphans(running, grace_seconds)
        return True
    running.optimize(  # the scheduler first: what it queues keeps its checkpoints
        claims.claim_or_give_up(objective, scheduler),
        timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
        catch=(TrialFailed,),
        callbacks=[claims.Steering(scheduler), *callbacks],
        gc_after_trial=True,
    )
    return True


def run_trials(
    running: optuna.Study,
    objective: recovery.TrialRunner,
    settings: StudySettings,
    timeout: float | None = None,
    output: str = "lines",
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = (),
    scheduler: Scheduler | None = None,
) -> None:
    """Run trials of `running` until its scheduler (by default the one its settings name)
    says it holds what it is run for (or `timeout` seconds have passed, or trials keep
    failing)."""
    scheduler = scheduler or strategy.of(settings)
    target = settings.trials
    guard = FailureGuard(MAX_CONSECUTIVE_FAILURES)
    deadline = None if timeout is None else time.monotonic() + timeout
    outage = recovery.Outage(settings.storage_patience)
    finished_before = recovery.patiently(
        lambda: len(running.get_trials(deepcopy=False, states=ledger.FINISHED)), outage
    )
    printer = live.TrialPrinter(target, finished_before, output)
    callbacks = [printer, guard, *callbacks, SurvivorsFrozen()]  # last: after the others' work
    poll_seconds = min(recovery.POLL_SECONDS, settings.heartbeat_interval)
    with startup_heap_frozen():
        while not guard.tripped and not out_of_time(deadline):
            try:
                if outage.began is not None:
                    running.get_trials(deepcopy=False)  # one look: is the storage back?
                    outage.over()
                # a trial the outage cut off, at once: not a grace period later
                recovery.requeue(running, objective, "cut off: its worker lost the storage")
                if not run_some_trials(
                    running, objective, scheduler, callbacks, poll_seconds, deadline,
                    settings.grace_period,
                ):  # fmt: skip
                    break
            except files.OutOfSpace as error:  # no checkpoint can be written: stop, resumable
                raise recovery.out_of_space(running, objective, error) from None
            except KeyboardInterrupt:
                recovery.interrupted(running, objective)
                raise
            except Exception as error:
                recovery.ride_out(running, objective, error, outage)
    printer.close()
    if guard.tripped:
        raise RunFailure(
            f"stopped after {guard.limit} failed trials in a row, the last: "
            f"{guard.last_reason or 'no reason recorded'} (every fail_reason is in the dashboard)"
        )
