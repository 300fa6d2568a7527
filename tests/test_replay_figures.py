"""The replay's accounting (search/bench/replay/figures.py), on runs written by hand so that
every figure is worked out here: the regret's scale, when a run reached a value, the mean
rank with ties, the paired test against scipy called directly, the epochs to random search's
best."""

import math
import statistics

import pytest
from scipy import stats

from search.bench.replay import figures

SCALE = figures.Reference(best=0.9, median=0.5)


def run(strategy, seed, values, improvements=(), task="t", own_best=1):
    best = dict(zip(figures.FRACTIONS, values, strict=True))
    regret = {f: SCALE.regret(v) for f, v in best.items()}
    return figures.Run(strategy, task, seed, best, own_best, regret, tuple(improvements))


def test_regret_is_0_at_the_sample_s_best_1_at_its_median_and_1_before_anything_completes():
    assert SCALE.regret(0.9) == 0.0
    assert SCALE.regret(0.5) == pytest.approx(1.0)
    assert SCALE.regret(0.7) == pytest.approx(0.5)
    assert SCALE.regret(1.0) == pytest.approx(-0.25)  # better than the whole sample
    assert SCALE.regret(None) == 1.0
    flat = figures.Reference(best=0.5, median=0.5)
    assert flat.regret(0.5) == 0.0 and flat.regret(0.4) == pytest.approx(0.1 / 1e-12)


def test_a_run_reaches_a_value_at_its_first_completion_as_good():
    found = run("r", 0, (0.5, 0.6, 0.7), ((10, 0.5), (20, 0.7), (30, 0.8)))
    assert found.epochs_to_reach(0.7) == 20  # as good counts
    assert found.epochs_to_reach(0.6) == 20
    assert found.epochs_to_reach(0.81) is None


def test_ranks_are_shared_by_ties_and_counted_only_where_every_strategy_ran():
    runs = [run("a", 0, (0.5, 0.6, 0.7)), run("b", 0, (0.5, 0.6, 0.7)),
            run("c", 0, (0.5, 0.6, 0.9)),
            run("a", 1, (0.5, 0.6, 0.9)), run("b", 1, (0.5, 0.6, 0.8)),
            run("c", 1, (0.5, 0.6, 0.7)),
            run("a", 2, (0.5, 0.6, 0.5), task="s")]  # b, c did not run it: not ranked  # fmt: skip
    rows = {row["strategy"]: row for row in figures.summary(runs, "a")}
    assert rows["a"]["mean_rank"] == pytest.approx((2.5 + 1) / 2)
    assert rows["b"]["mean_rank"] == pytest.approx((2.5 + 2) / 2)
    assert rows["c"]["mean_rank"] == pytest.approx((1 + 3) / 2)
    assert rows["c"]["mean_rank_ci"] == pytest.approx(
        1.96 * statistics.stdev([1, 3]) / math.sqrt(2)
    )
    assert rows["a"]["runs"] == 3 and rows["b"]["runs"] == 2
    assert list(rows) == ["a", "b", "c"]  # in their first order
    apart = figures.summary([run("a", 0, (0.5, 0.6, 0.7)), run("b", 1, (0.5, 0.6, 0.7))], "a")
    assert all(math.isnan(row["mean_rank"]) for row in apart)  # no case both ran


def test_the_paired_test_is_scipy_s_wilcoxon_by_task_and_seed():
    default = [0.9, 0.8, 0.85, 0.7, 0.75, 0.95, 0.6]
    other = [0.8, 0.82, 0.7, 0.6, 0.74, 0.9, 0.5]
    runs = [run("default", s, (0.5, v, v)) for s, v in enumerate(default)]
    runs += [run("other", s, (0.5, v, v)) for s, v in enumerate(other)]
    runs += [run("other", 99, (0.5, 0.1, 0.1))]  # unpaired: left out of the test
    rows = {row["strategy"]: row for row in figures.summary(runs, "default")}
    expected = stats.wilcoxon([SCALE.regret(v) for v in other],
                              [SCALE.regret(v) for v in default]).pvalue  # fmt: skip
    assert rows["other"]["p_vs_default"] == {"0.5": pytest.approx(expected),
                                             "1.0": pytest.approx(expected)}  # fmt: skip
    assert "p_vs_default" not in rows["default"]
    same = [run(name, s, (0.5, 0.6, 0.7)) for name in ("default", "twin") for s in range(3)]
    assert figures.summary(same, "default")[1]["p_vs_default"] == {"0.5": None, "1.0": None}
    assert "p_vs_default" not in figures.summary(same, "absent")[1]


def test_each_row_holds_its_means_standard_errors_and_epochs_to_its_own_and_random_s_best():
    runs = [run("random", 0, (0.5, 0.6, 0.7), ((40, 0.7),), own_best=40),
            run("random", 1, (0.5, 0.6, 0.8), ((30, 0.8),), own_best=30),
            run("random", 2, (None, None, None), own_best=None),
            run("default", 0, (0.6, 0.8, 0.9), ((10, 0.7), (20, 0.9)), own_best=20),
            run("default", 1, (0.6, 0.7, 0.7), ((15, 0.7),), own_best=15),
            run("default", 2, (0.6, 0.7, 0.7), ((15, 0.7),), own_best=15)]  # fmt: skip
    rows = {row["strategy"]: row for row in figures.summary(runs, "default")}
    regrets = [SCALE.regret(v) for v in (0.9, 0.7, 0.7)]
    assert rows["default"]["regret"]["1.0"] == pytest.approx(statistics.fmean(regrets))
    assert rows["default"]["regret_se"]["1.0"] == pytest.approx(
        statistics.stdev(regrets) / math.sqrt(3)
    )
    assert rows["default"]["epochs_to_own_best"] == {"median": 15}
    assert rows["random"]["epochs_to_own_best"] == {"median": 35}  # the run with none left out
    # default reached random's 0.7 at 10 (seed 0); never its 0.8 (seed 1); seed 2: nothing
    assert rows["default"]["epochs_to_random_best"] == {"median": 10, "reached": 1}
    assert rows["random"]["epochs_to_random_best"] == {"median": 35, "reached": 2}
    without = figures.summary([r for r in runs if r.strategy == "default"], "default")
    assert "epochs_to_random_best" not in without[0]


def test_a_single_value_has_no_standard_error_and_nothing_has_no_median():
    assert math.isnan(figures.standard_error([0.3]))
    assert figures.standard_error([1.0, 3.0]) == pytest.approx(1.0)
    assert figures.median_of([None, None]) is None
    assert figures.median_of([3, None, 1]) == 2
