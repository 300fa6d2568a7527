"""A search replayed on recorded learning curves, on a simulated clock, as Syne Tune's simulator
backend replays its blackboxes: each trial's configuration is looked up, each of its epochs
ends when the curve's seconds say, and W asynchronous workers take trials as they free up, so
that stragglers, promotion and the pruner's view of its rivals are what a cluster would see.
The search is the product's own: the study's sampler and pruner (strategy.attach) and its
scheduler (strategy.of), driven through the same interface as the execution loop drives them
(next, claim, start, resumed, on_epoch, ended), on Optuna's in-memory storage."""

import dataclasses
import heapq
import itertools
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from search.tuning.records import keys
from search.tuning.records.settings import StudySettings
from search.tuning.strategies import continuation, strategy, transfer
from search.tuning.strategies.scheduler import Decision, Next, NotNeeded

optuna.logging.set_verbosity(optuna.logging.WARNING)
# TPE's `group` is experimental in Optuna 5: said once per sampler, hundreds of times a table
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclasses.dataclass(frozen=True)
class Curve:
    """A configuration's learning curve: validation accuracy (a fraction) after each epoch,
    and the seconds each epoch took. A training that diverged has one epoch more in its
    seconds than in its accuracy: the epoch whose loss became NaN, which a search trains and
    then prunes the trial without reporting it."""

    val_accuracy: tuple[float, ...]
    seconds: tuple[float, ...]

    @property
    def diverges(self) -> bool:
        return len(self.seconds) > len(self.val_accuracy)


@dataclasses.dataclass(frozen=True)
class Completion:
    """A trial that trained all its epochs: when, by epochs trained and simulated seconds."""

    epochs: int  # epochs the search had trained when it ended
    seconds: float
    value: float
    number: int


@dataclasses.dataclass
class Replayed:
    """One search: its study, what completed when, and the budget it had."""

    study: optuna.Study
    completions: list[Completion]
    epochs: int  # epochs trained in all
    seconds: float  # simulated seconds at the end

    def best_by(self, epochs: float) -> float | None:
        """The incumbent once `epochs` had been trained: the best value of a trial that had
        trained all its epochs by then (as the live table counts it)."""
        found = [c.value for c in self.completions if c.epochs <= epochs]
        return max(found) if found else None

    def epochs_to_reach(self, value: float) -> int | None:
        return next((c.epochs for c in self.completions if c.value >= value), None)


@dataclasses.dataclass
class _Running:
    trial: optuna.Trial
    curve: Curve
    done: int  # epochs trained (or resumed after)


def replay(
    settings: StudySettings,
    suggest: Callable[[optuna.Trial], dict],
    curve_of: Callable[[dict], object],
    workers: int,
    study_name: str,
    queued: transfer.Transfer | None = None,
) -> Replayed:
    """Run a search of `settings` (its budget: settings.epoch_budget) with `workers` simulated
    workers, each trial's configuration chosen by `suggest` on the trial and its curve from
    `curve_of`; the study named as search.run names it, since Hyperband's brackets hash it.
    A warm start's configs (`queued`) are queued first, as search.run queues them."""
    simulation = Simulation(settings, suggest, curve_of, study_name, queued)
    idle = list(range(workers))
    while True:
        idle = [worker for worker in idle if not simulation.start(worker)]
        ended = simulation.step()
        if ended is None:  # nothing runs, and nothing could start
            break
        idle.append(ended)
        if settings.epoch_budget and simulation.trained >= settings.epoch_budget:
            break
    return Replayed(simulation.study, simulation.completions, simulation.trained,
                    simulation.now)  # fmt: skip


class Simulation:
    """The study, its strategy, the clock and the queue of epoch ends."""

    def __init__(self, settings: StudySettings, suggest, curve_of, study_name: str, queued=None):
        self.settings, self.curve_of = settings, curve_of
        box = settings.search_box  # a warm start's, as the objective suggests inside it
        self.suggest = (lambda trial: suggest(transfer.BoxedTrial(trial, box))) if box else suggest
        self.study = optuna.create_study(
            storage=optuna.storages.InMemoryStorage(), study_name=study_name,
            directions=settings.directions,
        )  # fmt: skip
        if queued is not None:
            transfer.enqueue(self.study, queued)
        strategy.attach(self.study, settings, slot=0)
        # paused trials whose checkpoints a live search would have removed: it keeps only the
        # --keep-paused most promising, and one removed cannot be continued
        self.removed: set[int] = set()
        self.scheduler = strategy.of(settings, resumable=lambda number: number not in self.removed)
        self.events: list[tuple[float, int, int, _Running]] = []
        self.order = itertools.count()
        self.now, self.trained, self.completions = 0.0, 0, []

    def start(self, worker: int) -> bool:
        """Start a trial on `worker` now; False if the scheduler has none to start."""
        while self.scheduler.next(self.study) is Next.START:
            trial = self.study.ask()
            surplus = self.scheduler.claim(trial, self.study.get_trials(deepcopy=False))
            try:
                if surplus:  # as the live loop: a surplus trial fails before it suggests
                    raise NotNeeded(surplus)
                params = self.suggest(trial)
                self.scheduler.start(trial, params)
            except NotNeeded as reason:
                trial.set_user_attr(keys.FAIL_REASON, str(reason))
                trial.set_user_attr(keys.NOT_NEEDED, True)
                self.study.tell(trial, state=TrialState.FAIL)
                continue
            running = _Running(trial, self.curve_of(params), resumed_after(self.study, trial))
            if running.done:
                trial.set_user_attr(keys.RESUMED_AFTER_EPOCH, running.done)
                self.scheduler.resumed(trial, running.curve.val_accuracy[: running.done])
            self.push(worker, running)
            return True
        return False

    def push(self, worker: int, running: _Running) -> None:
        ends = self.now + running.curve.seconds[running.done]
        heapq.heappush(self.events, (ends, next(self.order), worker, running))

    def step(self) -> int | None:
        """Epochs end, in time order, until a trial does; its worker (None: nothing runs)."""
        while self.events:
            self.now, _, worker, running = heapq.heappop(self.events)
            running.done += 1
            self.trained += 1
            if running.done > len(running.curve.val_accuracy):
                self.diverged(running)
                return worker
            curve = running.curve.val_accuracy[: running.done]
            decision = self.scheduler.on_epoch(running.trial, curve)
            if running.done in (len(running.curve.seconds), self.settings.epochs):
                # it trained them all: it completes whatever the epoch decided, as the live
                # trainer ends it (its last epoch can be a rung: 9 epochs at eta 3)
                decision = Decision.CONTINUE
            elif decision is Decision.CONTINUE:
                self.push(worker, running)
                continue
            self.end(running.trial, decision, curve)
            return worker
        return None

    def diverged(self, running: _Running) -> None:
        """As the objective prunes a training whose loss became NaN: unreported, untold to
        the strategy."""
        reason = f"the training loss became nan in epoch {running.done}"
        running.trial.set_user_attr(keys.PRUNE_REASON, reason)
        self.study.tell(running.trial, state=TrialState.PRUNED)
        self.remove_checkpoints()

    def end(self, trial: optuna.Trial, decision: Decision, curve) -> None:
        if decision is Decision.CONTINUE:  # it trained all its epochs
            self.study.tell(trial, curve[-1])
            self.completions.append(Completion(self.trained, self.now, curve[-1], trial.number))
        else:
            trial.set_user_attr(keys.PRUNE_REASON, self.scheduler.ended(trial, decision, curve))
            self.study.tell(trial, state=TrialState.PRUNED)
        self.remove_checkpoints()

    def remove_checkpoints(self) -> None:
        """As a live worker does after each trial (TrialCheckpoints.remove_finished): the
        paused trials that the strategy no longer keeps lose their checkpoints for good."""
        if not self.scheduler.pause:
            return
        trials = self.study.get_trials(deepcopy=False)
        kept = self.scheduler.keeps(trials, self.study.direction)
        self.removed.update(t.number for t in continuation.paused(trials) if t.number not in kept)


def resumed_after(study: optuna.Study, trial: optuna.Trial) -> int:
    """The epoch a continuation resumes after: where the trial it continues paused (its
    curve, as a checkpoint would, holds the run up to there)."""
    lineage = trial.user_attrs.get(keys.CONTINUES, [])
    if not lineage:
        return 0
    return study.get_trials(deepcopy=False)[lineage[-1]].user_attrs.get(keys.PAUSED, 0)
