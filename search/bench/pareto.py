"""The pareto section: pruning with several objectives (--pruner moasha) against none, at an
equal budget, as the strategies section compares single-objective strategies: the same space,
data, workers and epochs trained (--epoch-budget), repeated over seeds, the spread shown.

Objectives accuracy and a cost (--pareto-objectives: the parameter count, or the latency in ms
a batch on the search's device). What a search found by a moment of its budget is the front
of its trials that had trained all their epochs by then; its quality is the hypervolume that
front dominates, in (validation error, log10 cost), both minimized, from one reference point
for the whole table (error 1, and a tenth of a decade above the costliest network any search
of the table trained): a larger hypervolume is a front that is more accurate, cheaper, or
both. Optuna computes it (the private function its hypervolume plot
uses)."""

import dataclasses
import math
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
from optuna._hypervolume import compute_hypervolume
from optuna.trial import TrialState

from search.bench import strategies
from search.bench.rows import Row
from search.tuning.records import ledger

PRUNERS = ("none", "moasha")  # the study with every trial trained to the end, and ours


@dataclasses.dataclass(frozen=True)
class ParetoSearch:
    pruner: str
    seed: int
    seconds: float
    trials: int  # trials that trained
    pruned: int
    # (the moment it finished, in epochs trained by then; its error; log10 of its cost)
    points: list[tuple[int, float, float]]

    def front_at(self, epochs: int) -> list[tuple[float, float]]:
        return [(error, size) for finished, error, size in self.points if finished <= epochs]


def read_pareto_search(pruner: str, seed: int, seconds: float, found: optuna.Study):
    trials = found.get_trials(deepcopy=False)
    trained_by = strategies.Timeline.of(trials).trained_by
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return ParetoSearch(
        pruner, seed, seconds,
        trials=sum(t.state in ledger.FINISHED for t in trials),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        points=[(trained_by(t), 1 - t.values[0], math.log10(t.values[1])) for t in complete],
    )  # fmt: skip


def hypervolume(front: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    if not front:
        return 0.0
    return float(compute_hypervolume(np.array(front), np.array(reference)))


def pareto_rows(bench) -> Iterator[Row]:
    """One row per pruner, at --strategy-repeats seeds each, on the strategies' flags."""
    args = bench.args
    searches: dict[str, list[ParetoSearch]] = {pruner: [] for pruner in PRUNERS}
    with tempfile.TemporaryDirectory() as folder:
        for pruner in PRUNERS:
            for seed in range(args.strategy_repeats):
                flags = ["--sampler", "tpe", "--objectives", args.pareto_objectives,
                         "--pruner", pruner]  # fmt: skip
                seconds, found = strategies.run_study(
                    bench, f"pareto-{pruner}", seed, Path(folder), flags
                )
                searches[pruner].append(read_pareto_search(pruner, seed, seconds, found))
    largest = max(size for runs in searches.values() for s in runs for _, _, size in s.points)
    reference = (1.0, largest + 0.1)
    for pruner, runs in searches.items():
        yield pareto_row(pruner, runs, reference, args)


def pareto_row(pruner: str, runs: list[ParetoSearch], reference, args) -> Row:
    budget = args.strategy_budget
    at = {
        fraction: [hypervolume(s.front_at(math.ceil(fraction * budget)), reference) for s in runs]
        for fraction in strategies.FRACTIONS
    }

    def spread(values: list[float]) -> str:
        deviation = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {deviation:.3f}"

    result = (
        f"hypervolume at 25% {spread(at[0.25])}, 50% {spread(at[0.5])}, 100% "
        f"{spread(at[1.0])}; {statistics.mean(s.trials for s in runs):.0f} trials "
        f"({statistics.mean(s.pruned for s in runs):.0f} pruned), "
        f"{statistics.mean(s.seconds for s in runs):.0f} s a search"
    )
    cost = args.pareto_objectives.partition(",")[2]
    setting = (
        f"--objectives {args.pareto_objectives} --sampler tpe --pruner {pruner}; "
        f"{args.strategy_space}, --epochs {args.strategy_epochs}, budget {budget} epochs, "
        f"{args.strategy_workers} worker(s), {len(runs)} seed(s); reference (error "
        f"{reference[0]}, log10 {cost} {reference[1]:.2f})"
    )
    figures = {
        "pruner": pruner, "budget_epochs": budget, "reference": list(reference),
        "hypervolume": {str(f): values for f, values in at.items()},
        "searches": [dataclasses.asdict(s) for s in runs],
    }  # fmt: skip
    return Row(f"pareto: {pruner}", setting, result, None, figures)
