"""A worker's garbage collections kept short: what exists before the first trial, and what
survives each, is frozen out of the collections that Optuna's gc_after_trial runs."""

import contextlib
import gc

import optuna
from optuna.trial import FrozenTrial


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
