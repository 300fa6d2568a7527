"""What a trial costs beside its training, as the study grows: the sampler's ask, the space's
suggestions and the config it records (a storage write each), one report and pruning
decision per epoch, the result's attributes and the tell, and the garbage collection Optuna
runs after each trial. search.bench's `bookkeeping` section prints it.

Training is the one thing not run: each trial's epoch accuracies are made up (rising with
the epoch, with noise), so a thousand trials take minutes, not days. Everything else is the
search's own: the space, the default sampler and pruner, the storage and the writes a
worker makes per trial (objective.py).
"""

import dataclasses
import gc
import itertools
import random
import time

import optuna

import spaces
from search.tuning.execution import memory
from search.tuning.records import config_attrs, keys
from search.tuning.store import storage
from search.tuning.strategies import pruners, samplers

PHASES = ("ask", "suggest", "report", "tell", "collect")


@dataclasses.dataclass(frozen=True)
class Window:
    """Mean milliseconds per trial over the trials up to `trials`, since the last window."""

    trials: int
    ask: float  # study.ask(): the sampler's relative sampling and the trial's row
    suggest: float  # the space's suggestions (each a sampler call and a write) and its config
    report: float  # every epoch's report and should_prune
    tell: float  # the result's attributes and study.tell
    # gc.collect(), as Optuna runs it after each of a worker's trials (gc_after_trial), with
    # what existed before the first trial and what survived the trials before frozen out of
    # it, as the worker's trial loop does (memory.SurvivorsFrozen: its sweeps included)
    collect: float

    @property
    def total(self) -> float:
        return self.ask + self.suggest + self.report + self.tell + self.collect


def made_up_accuracies(generator: random.Random, epochs: int) -> list[float]:
    """A learning curve: a ceiling drawn per trial, approached epoch by epoch, with noise."""
    ceiling = generator.uniform(0.3, 0.95)
    return [ceiling * (1 - 0.5**epoch) + generator.gauss(0, 0.01) for epoch in range(1, epochs + 1)]


def one_trial(
    study: optuna.Study, space_function, context, generator, epochs: int,
    survivors: memory.SurvivorsFrozen,
) -> list[float]:  # fmt: skip
    """One trial as a worker runs it, training made up; the seconds of each of PHASES."""
    marks = [time.perf_counter()]
    trial = study.ask()
    marks.append(time.perf_counter())
    config_attrs.record(trial, space_function(trial, context))
    trial.set_user_attr(keys.DEVICE, "bookkeeping")
    trial.set_user_attr(keys.WORKER, "bookkeeping")
    marks.append(time.perf_counter())
    pruned = False
    for epoch, accuracy in enumerate(made_up_accuracies(generator, epochs), 1):
        trial.report(accuracy, epoch)
        if trial.should_prune():
            pruned = True
            break
    marks.append(time.perf_counter())
    for name in ("param_count", "seconds_per_epoch", "images_per_second", "train_loss"):
        trial.set_user_attr(name, 1.0)
    if pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, accuracy)
    marks.append(time.perf_counter())
    gc.collect()
    survivors(study)
    marks.append(time.perf_counter())
    return [after - before for before, after in itertools.pairwise(marks)]


def measure(
    space: str, storage_url: str, trials: int, epochs: int, every: int, seed: int = 0
) -> list[Window]:
    """`trials` trials of `space` with `epochs` epochs each in a new study on `storage_url`
    (TPE and Hyperband, search.run's defaults when it was measured), one Window per `every` trials."""
    with storage.kept_open(storage_url) as opened:
        study = optuna.create_study(
            storage=opened, study_name=f"bookkeeping-{space}-{time.time_ns()}",
            direction="maximize", sampler=samplers.tpe(seed), pruner=pruners.hyperband(epochs),
        )  # fmt: skip
        context = spaces.SpaceContext("cifar10", epochs, seed)
        space_function = spaces.get(space)
        generator = random.Random(seed)
        windows, spent = [], [0.0] * len(PHASES)
        survivors = memory.SurvivorsFrozen()
        with memory.startup_heap_frozen():
            for number in range(1, trials + 1):
                seconds = one_trial(study, space_function, context, generator, epochs, survivors)
                spent = [total + more for total, more in zip(spent, seconds, strict=True)]
                if number % every == 0 or number == trials:
                    count = number - (windows[-1].trials if windows else 0)
                    windows.append(Window(number, *(1000 * total / count for total in spent)))
                    spent = [0.0] * len(PHASES)
    return windows
