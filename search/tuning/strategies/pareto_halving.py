"""Pruning with several objectives: asynchronous successive halving that ranks trials by Pareto
front (MO-ASHA: Schmucker et al., "Multi-objective Asynchronous Successive Halving", 2021;
Syne Tune's MOASHA). Optuna has none: its pruners compare one intermediate value, and its
Trial.report refuses a study with several objectives (optuna#3450).

Accuracy is the one objective that is learned epoch by epoch; the others (parameter count,
latency) are properties of the network, known before it trains (measured on it as built). A
trial's point at epoch e is therefore (its accuracy after e epochs, its costs). At each rung
(epochs 1, η, η², ... below the last) a trial goes on only if it is among the best
max(1, n // η) of the n trials that have reached that rung, ranked as NSGA-II ranks a
population: by Pareto front, and within a front by crowding distance, so that those kept
spread along the front rather than crowd one end of it. η is Hyperband's 3. A trial stopped
at a rung is dominated there, or on a crowded stretch of a front that holds more than a
third of the rung's trials; an early arrival is compared with the few before it, as in ASHA.
"""

import dataclasses
import math
from collections.abc import Sequence

import optuna
from optuna.trial import TrialState

from search.tuning.records import keys, settings
from search.tuning.strategies.scheduler import Decision, Scheduler

REDUCTION_FACTOR = 3
# The trials a rung compares, as Optuna's successive halving does: a failed one is not (its
# re-run, which resumes with its curve, stands for it; a re-run carries no user attributes)
COMPARED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
# Each cost objective's value as measured before training (a user attribute of the trial),
# named after its metric
COST_ATTRS = {
    name: f"before_training_{metric}"
    for name, (_, metric) in settings.OBJECTIVES.items()
    if name != "accuracy"
}


def rungs(max_epochs: int, reduction_factor: int = REDUCTION_FACTOR) -> list[int]:
    """The epochs at which trials are compared: 1, η, η², ... below max_epochs."""
    found, epoch = [], 1
    while epoch < max_epochs:
        found.append(epoch)
        epoch *= reduction_factor
    return found


def fronts(losses: Sequence[Sequence[float]]) -> list[int]:
    """Each point's Pareto front (0: not dominated; all objectives minimized). Written here:
    Optuna's non-dominated sort is private (optuna.study._multi_objective); the test checks
    this against it."""
    count = len(losses)
    dominated_by = [0] * count
    dominates: list[list[int]] = [[] for _ in range(count)]
    for i in range(count):
        for j in range(i + 1, count):
            if _dominates(losses[i], losses[j]):
                dominates[i].append(j)
                dominated_by[j] += 1
            elif _dominates(losses[j], losses[i]):
                dominates[j].append(i)
                dominated_by[i] += 1
    front = [-1] * count
    current = [i for i in range(count) if dominated_by[i] == 0]
    level = 0
    while current:
        following = []
        for i in current:
            front[i] = level
            for j in dominates[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    following.append(j)
        current, level = following, level + 1
    return front


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def crowding(losses: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each point within its set (the ends of each objective's
    range: infinite), as Optuna's NSGA-II computes it (private there; the test compares)."""
    count = len(losses)
    distance = [0.0] * count
    for axis in range(len(losses[0]) if losses else 0):
        order = sorted(range(count), key=lambda i: losses[i][axis])
        low, high = losses[order[0]][axis], losses[order[-1]][axis]
        if high == low:  # an axis on which they are all equal tells them apart by nothing
            continue
        distance[order[0]] = distance[order[-1]] = math.inf
        for before, here, after in zip(order, order[1:], order[2:], strict=False):
            distance[here] += (losses[after][axis] - losses[before][axis]) / (high - low)
    return distance


def ranked(losses: Sequence[Sequence[float]]) -> list[int]:
    """Indices of `losses`, best first: by front, then by crowding distance within it."""
    front = fronts(losses)
    distance = [0.0] * len(losses)
    for level in set(front):
        members = [i for i in range(len(losses)) if front[i] == level]
        for i, value in zip(members, crowding([losses[i] for i in members]), strict=True):
            distance[i] = value
    return sorted(range(len(losses)), key=lambda i: (front[i], -distance[i], i))


@dataclasses.dataclass(frozen=True)
class ParetoHalving:
    """The rule above for a study's objectives (accuracy first, then costs) and epochs."""

    objectives: tuple[str, ...]
    max_epochs: int
    reduction_factor: int = REDUCTION_FACTOR

    def losses(self, trial: optuna.trial.FrozenTrial, epoch: int) -> list[float] | None:
        """The trial's point at `epoch`, every objective minimized; None if it has not got
        there (or its costs are not recorded yet)."""
        curve = trial.user_attrs.get(keys.CURVE, [])
        costs = [trial.user_attrs.get(COST_ATTRS[name]) for name in self.objectives[1:]]
        if len(curve) < epoch or None in costs:
            return None
        return [-curve[epoch - 1], *costs]

    def should_stop(self, study: optuna.Study, number: int, epoch: int) -> bool:
        """Whether trial `number`, which has just recorded `epoch` epochs (keys.CURVE), stops here."""
        if epoch not in rungs(self.max_epochs, self.reduction_factor):
            return False
        peers = {}
        for trial in study.get_trials(deepcopy=False, states=COMPARED):
            point = self.losses(trial, epoch)
            if point is not None:
                peers[trial.number] = point
        if number not in peers:  # its own point is not recorded: nothing to rank it by
            return False
        numbers = list(peers)
        order = ranked([peers[n] for n in numbers])
        kept = max(1, len(numbers) // self.reduction_factor)
        return numbers.index(number) not in order[:kept]


@dataclasses.dataclass
class ParetoScheduler(Scheduler):
    """Independent trials of a study with several objectives, whose curve Optuna's report
    refuses: each epoch's accuracy is recorded in the trial's curve (keys.CURVE), and with
    `halving` (--pruner moasha) the rule above stops it; the costs it ranks by are measured
    before the trial trains."""

    halving: ParetoHalving | None = None

    @property
    def measures_costs_first(self) -> bool:
        return self.halving is not None

    def resumed(self, trial: optuna.Trial, curve: Sequence[float]) -> None:
        """Nothing to report again: the next epoch records the whole curve."""

    def on_epoch(self, trial: optuna.Trial, curve: Sequence[float]) -> Decision:
        trial.set_user_attr(keys.CURVE, list(curve))
        if self.halving and self.halving.should_stop(trial.study, trial.number, len(curve)):
            return Decision.STOP
        return Decision.CONTINUE
