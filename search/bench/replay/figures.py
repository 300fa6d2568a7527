"""What an HPO researcher reads of replayed searches, per strategy over its runs (tasks x
seeds): normalized regret at shares of the budget with its standard error, the mean rank at the
budget's end with a confidence interval, a paired Wilcoxon test against the default, and the
epochs a run needed to find its own final best and to match random search's.

Regret is normalized per task against a reference sample of random configurations trained to
the end: (reference best - incumbent) / (reference best - reference median), so that 0 is the
best of the sample, 1 its median, and a strategy that beats the whole sample goes below 0. A
run with no complete trial yet is at 1, a random configuration's median."""

import dataclasses
import math
import statistics
from collections.abc import Sequence

FRACTIONS = (0.25, 0.5, 1.0)


@dataclasses.dataclass(frozen=True)
class Reference:
    """A task's scale: the best and the median final value of a random sample."""

    best: float
    median: float

    def regret(self, value: float | None) -> float:
        if value is None:
            return 1.0
        return (self.best - value) / max(self.best - self.median, 1e-12)


@dataclasses.dataclass(frozen=True)
class Run:
    """One replayed search, as the figures need it."""

    strategy: str
    task: str
    seed: int
    best: dict[float, float | None]  # budget fraction -> incumbent by then
    epochs_to_own_best: int | None
    regret: dict[float, float]
    improvements: tuple[tuple[int, float], ...]  # (epochs trained, value) of each completion

    def epochs_to_reach(self, value: float) -> int | None:
        """When the run first had a complete trial as good as `value` (None: never)."""
        return next((epochs for epochs, found in self.improvements if found >= value), None)


def summary(runs: Sequence[Run], default: str, random: str = "random") -> list[dict]:
    """One row a strategy, in the JSON's shape (issue 42), strategies in their first order."""
    strategies = list(dict.fromkeys(run.strategy for run in runs))
    by = {(r.strategy, r.task, r.seed): r for r in runs}
    cases = sorted({(r.task, r.seed) for r in runs})
    ranks = mean_ranks(by, strategies, cases)
    rows = []
    for name in strategies:
        own = [by[(name, *case)] for case in cases if (name, *case) in by]
        row = {
            "strategy": name,
            "runs": len(own),
            "regret": {str(f): statistics.fmean(r.regret[f] for r in own) for f in FRACTIONS},
            "regret_se": {str(f): standard_error([r.regret[f] for r in own]) for f in FRACTIONS},
            "mean_rank": ranks[name][0],
            "mean_rank_ci": ranks[name][1],
            "epochs_to_own_best": {"median": median_of(r.epochs_to_own_best for r in own)},
        }
        if default in strategies and name != default:
            row["p_vs_default"] = {
                str(f): paired_p(by, name, default, cases, f) for f in (0.5, 1.0)
            }
        row["p_vs"] = {  # against each other strategy: the best peer is not always the default
            other: {str(f): paired_p(by, name, other, cases, f) for f in FRACTIONS}
            for other in strategies if other != name
        }  # fmt: skip
        if random in strategies:
            reached = [reached_random(by, r, random) for r in own]
            found = [epochs for epochs in reached if epochs is not None]
            row["epochs_to_random_best"] = {"median": median_of(found), "reached": len(found)}
        rows.append(row)
    return rows


def reached_random(by: dict, run: Run, random: str) -> int | None:
    """When `run` first matched the final best of random search's run at its task and seed."""
    target = by.get((random, run.task, run.seed))
    if target is None or target.best[1.0] is None:
        return None
    return run.epochs_to_reach(target.best[1.0])


def mean_ranks(by: dict, strategies: list[str], cases) -> dict[str, tuple[float, float]]:
    """Each strategy's mean rank by regret at the budget's end (1: best; ties share their
    mean rank) over the cases every strategy ran, with a 95% interval's half-width."""
    ranks: dict[str, list[float]] = {name: [] for name in strategies}
    for case in cases:
        if not all((name, *case) in by for name in strategies):
            continue
        regrets = {name: by[(name, *case)].regret[1.0] for name in strategies}
        ordered = sorted(regrets.values())
        for name, value in regrets.items():
            first = ordered.index(value) + 1
            ranks[name].append(first + (ordered.count(value) - 1) / 2)
    return {
        name: (statistics.fmean(found) if found else math.nan, 1.96 * standard_error(found))
        for name, found in ranks.items()
    }


def paired_p(by: dict, name: str, default: str, cases, fraction: float) -> float | None:
    """scipy's two-sided Wilcoxon signed-rank test of the regrets of `name` and `default`,
    paired by task and seed; None where they never differ."""
    from scipy import stats

    pairs = [(by[(name, *c)].regret[fraction], by[(default, *c)].regret[fraction])
             for c in cases if (name, *c) in by and (default, *c) in by]  # fmt: skip
    if not any(a != b for a, b in pairs):
        return None
    return float(stats.wilcoxon([a for a, _ in pairs], [b for _, b in pairs]).pvalue)


def standard_error(values: Sequence[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def median_of(values) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None
