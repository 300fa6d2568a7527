"""What a trial costs beside its training, as the study grows: the sampler's ask, the space's
suggestions and the config it records (a storage write each), one report and pruning
decision per epoch, the result's attributes and the tell. search.bench's `bookkeeping`
section prints it.

Training is the one thing not run: each trial's epoch accuracies are made up (rising with
the epoch, with noise), so a thousand trials take minutes, not days. Everything else is the
search's own: the space, the default sampler and pruner, the storage and the writes a
worker makes per trial (objective.py).
"""

import dataclasses
import random
import time

import optuna

import spaces
from search.tuning import samplers, storage, trial_config

PHASES = ("ask", "suggest", "report", "tell")


@dataclasses.dataclass(frozen=True)
class Window:
    """Mean milliseconds per trial over the trials up to `trials`, since the last window."""

    trials: int
    ask: float  # study.ask(): the sampler's relative sampling and the trial's row
    suggest: float  # the space's suggestions (each a sampler call and a write) and its config
    report: float  # every epoch's report and should_prune
    tell: float  # the result's attributes and study.tell

    @property
    def total(self) -> float:
        return self.ask + self.suggest + self.report + self.tell


def made_up_accuracies(generator: random.Random, epochs: int) -> list[float]:
    """A learning curve: a ceiling drawn per trial, approached epoch by epoch, with noise."""
    ceiling = generator.uniform(0.3, 0.95)
    return [ceiling * (1 - 0.5**epoch) + generator.gauss(0, 0.01) for epoch in range(1, epochs + 1)]


def measure(
    space: str, storage_url: str, trials: int, epochs: int, every: int, seed: int = 0
) -> list[Window]:
    """`trials` trials of `space` with `epochs` epochs each in a new study on `storage_url`
    (TPE and Hyperband, search.run's defaults), one Window per `every` trials."""
    opened = storage.open_storage(storage_url)
    study = optuna.create_study(
        storage=opened, study_name=f"bookkeeping-{space}-{time.time_ns()}", direction="maximize",
        sampler=samplers.tpe(seed), pruner=samplers.hyperband(epochs),
    )  # fmt: skip
    context = spaces.SpaceContext("cifar10", epochs, seed)
    space_function = spaces.get(space)
    generator = random.Random(seed)
    windows, spent = [], dict.fromkeys(PHASES, 0.0)
    for number in range(1, trials + 1):
        started = time.perf_counter()
        trial = study.ask()
        asked = time.perf_counter()
        config = space_function(trial, context)
        trial_config.record(trial, config)
        trial.set_user_attr("device", "bookkeeping")
        trial.set_user_attr("worker", "bookkeeping")
        suggested = time.perf_counter()
        pruned = False
        for epoch, accuracy in enumerate(made_up_accuracies(generator, epochs), 1):
            trial.report(accuracy, epoch)
            if trial.should_prune():
                pruned = True
                break
        reported = time.perf_counter()
        for name in ("param_count", "seconds_per_epoch", "images_per_second", "train_loss"):
            trial.set_user_attr(name, 1.0)
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, accuracy)
        told = time.perf_counter()
        for phase, seconds in zip(PHASES, (asked - started, suggested - asked,
                                           reported - suggested, told - reported), strict=True):  # fmt: skip
            spent[phase] += seconds
        if number % every == 0 or number == trials:
            count = number - (windows[-1].trials if windows else 0)
            windows.append(Window(number, *(1000 * spent[p] / count for p in PHASES)))
            spent = dict.fromkeys(PHASES, 0.0)
    storage.close(opened)
    return windows
