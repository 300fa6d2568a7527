"""Pruning with several objectives (search/tuning/strategies/pareto_halving.py): its sort and crowding
against Optuna's own NSGA-II, its rule on a real study, and a real search that prunes by it."""

import math

import numpy as np
import optuna
import pytest
from optuna.samplers.nsgaii._elite_population_selection_strategy import _calc_crowding_distance
from optuna.study._multi_objective import _fast_non_domination_rank
from optuna.trial import FrozenTrial, TrialState

from search import run
from search.tuning.records.keys import CURVE
from search.tuning.strategies import pareto_halving
from search.tuning.strategies.pareto_halving import ParetoHalving
from search.tuning.strategies.scheduler import Decision

PARAMS = pareto_halving.COST_ATTRS["params"]


@pytest.mark.parametrize("count, axes", [(1, 2), (7, 2), (40, 2), (40, 3)])
def test_fronts_are_optunas_non_dominated_sort(count, axes):
    generator = np.random.default_rng(count * axes)
    for losses in (generator.random((count, axes)),
                   generator.integers(0, 4, (count, axes)).astype(float)):  # fmt: skip
        assert pareto_halving.fronts(losses.tolist()) == _fast_non_domination_rank(losses).tolist()


def test_crowding_is_optunas_nsga2_crowding_distance():
    losses = np.random.default_rng(3).random((12, 3))
    population = [
        FrozenTrial(number=i, state=TrialState.COMPLETE, value=None, values=list(row),
                    datetime_start=None, datetime_complete=None, params={}, distributions={},
                    user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=i)
        for i, row in enumerate(losses)
    ]  # fmt: skip
    optunas = _calc_crowding_distance(population)
    assert pareto_halving.crowding(losses.tolist()) == pytest.approx(
        [optunas[i] for i in range(len(losses))]
    )


def test_a_front_is_ranked_ends_first_then_the_least_crowded():
    """NSGA-II's order, worked out by hand (issue 44: the search test's expectation came from
    `ranked` itself). On one front of four points, the two ends (infinite distance) come first;
    of the middle two (both ranges are 3), (1.1, 1.9) lies between 1 and 3 on the first axis
    and between 0 and 2 on the second: 2/3 + 2/3 = 1.33; (1, 2) between 0 and 1.1, and 1.9 and
    3: 1.1/3 + 1.1/3 = 0.73, the more crowded, so it comes after; a dominated point last."""
    losses = [[1.0, 2.0], [0.0, 3.0], [3.0, 3.0], [1.1, 1.9], [3.0, 0.0]]
    assert pareto_halving.crowding([losses[i] for i in (0, 1, 3, 4)]) == pytest.approx(
        [2.2 / 3, math.inf, 4 / 3, math.inf]
    )
    assert pareto_halving.ranked(losses) == [1, 4, 3, 0, 2]


def test_a_front_s_crowding_is_computed_among_its_own_points_alone():
    """Three fronts: (0, 2) and (2, 1) are the front, (0, 4) is behind (0, 2), (1, 4) behind
    (0, 4). A front of two points has both at the ends of both axes (infinite distance), so
    they keep their numbers' order. Among the next front's point as well, (0, 2) would lie
    between the others on both axes (2 / 2 + 3 / 3 = 2, finite) and fall behind (2, 1)."""
    losses = [[0.0, 4.0], [0.0, 2.0], [2.0, 1.0], [1.0, 4.0]]
    assert pareto_halving.fronts(losses) == [1, 0, 0, 2]
    assert pareto_halving.ranked(losses) == [1, 2, 0, 3]


def test_no_points_have_no_distances():
    assert pareto_halving.crowding([]) == []


def test_an_axis_on_which_all_points_are_equal_is_skipped_not_the_end_of_the_count():
    """Equal on the first objective, spread on the second: the middle point's distance is the
    second axis's (3 - 0) / 3 = 1 (a mutant that stopped at the first equal axis survived)."""
    assert pareto_halving.crowding([[0.0, 0.0], [0.0, 1.0], [0.0, 3.0]]) == [
        math.inf, pytest.approx(1.0), math.inf
    ]  # fmt: skip


def test_a_trial_s_point_is_its_accuracy_at_that_epoch_and_its_costs():
    """Every objective minimized: the accuracy after `epoch` epochs negated, the costs as
    measured; no point before it got there or before its costs are known."""
    halving = pareto_halving.ParetoHalving(("accuracy", "params"), max_epochs=9)
    trial = optuna.trial.create_trial(
        state=TrialState.RUNNING, user_attrs={CURVE: [0.1, 0.4, 0.5], PARAMS: 1000.0}
    )  # fmt: skip
    assert halving.losses(trial, 2) == [-0.4, 1000.0]
    assert halving.losses(trial, 3) == [-0.5, 1000.0]
    assert halving.losses(trial, 4) is None
    unmeasured = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={CURVE: [0.1]})
    assert halving.losses(unmeasured, 1) is None


def test_rungs_are_successive_halvings():
    assert pareto_halving.rungs(27) == [1, 3, 9]
    assert pareto_halving.rungs(28) == [1, 3, 9, 27]
    assert pareto_halving.rungs(1) == []


def at_rung(study: optuna.Study, accuracy: float, params: float, epochs: int = 1) -> int:
    """A running trial that has recorded `epochs` epochs at `accuracy`, with `params`."""
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, CURVE, [accuracy] * epochs)
    study._storage.set_trial_user_attr(trial._trial_id, PARAMS, params)
    return trial.number


def test_a_dominated_trial_is_stopped_at_a_rung_and_a_non_dominated_one_goes_on(tmp_path):
    """Six trials at the first rung, (accuracy, parameters): the best third, 2, go on. Of the
    front (A: most accurate, C: smallest), both; B, dominated by A, and the rest stop."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'mo.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    a = at_rung(study, 0.50, 100)
    b = at_rung(study, 0.45, 200)
    c = at_rung(study, 0.30, 50)
    others = [at_rung(study, accuracy, 400) for accuracy in (0.20, 0.25, 0.10)]
    halving = ParetoHalving(("accuracy", "params"), max_epochs=10)
    assert not halving.should_stop(study, a, 1)
    assert not halving.should_stop(study, c, 1)
    assert halving.should_stop(study, b, 1)
    assert all(halving.should_stop(study, number, 1) for number in others)
    assert not halving.should_stop(study, b, 2)  # not a rung: nothing is decided there


def test_a_later_rung_and_another_reduction_factor_decide_alike(tmp_path):
    """The rungs are 1, eta, eta^2 ... of the halving's own eta: at 3 for eta 3, at 2 for eta
    2 (not a rung of eta 3). Four trials there, A the front on both objectives: eta 3 keeps
    max(1, 4 // 3) = 1, A; eta 2 keeps 2, A and the best of the rest (it dominates the other two)."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'later.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    third = ParetoHalving(("accuracy", "params"), max_epochs=10)
    a, *others = [at_rung(study, accuracy, params, epochs=3)
                  for accuracy, params in ((0.9, 10), (0.5, 20), (0.4, 30), (0.3, 40))]  # fmt: skip
    assert not third.should_stop(study, a, 3)
    assert all(third.should_stop(study, number, 3) for number in others)
    half = ParetoHalving(("accuracy", "params"), max_epochs=10, reduction_factor=2)
    assert not half.should_stop(study, a, 2) and not half.should_stop(study, others[0], 2)
    assert half.should_stop(study, others[1], 2) and half.should_stop(study, others[2], 2)
    assert not third.should_stop(study, others[2], 2)  # epoch 2 is no rung of eta 3


def test_of_three_trials_at_a_rung_one_goes_on(tmp_path):
    """max(1, 3 // 3) = 1: the front's one trial, not the two best."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'three.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    best, second, third = [at_rung(study, accuracy, 10) for accuracy in (0.9, 0.8, 0.7)]
    halving = ParetoHalving(("accuracy", "params"), max_epochs=10)
    assert [halving.should_stop(study, n, 1) for n in (best, second, third)] == [False, True, True]


def test_a_trial_that_has_recorded_nothing_yet_is_not_a_rival(tmp_path):
    """A trial just started (no curve, no costs) stands at no rung: the others are ranked
    among themselves, and it raises nothing."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'started.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    best = at_rung(study, 0.9, 10)
    study.ask()
    worse = at_rung(study, 0.1, 10)
    halving = ParetoHalving(("accuracy", "params"), max_epochs=10)
    assert not halving.should_stop(study, best, 1) and halving.should_stop(study, worse, 1)


def test_the_scheduler_records_each_epoch_s_curve_and_stops_as_the_halving_says(tmp_path):
    """ParetoScheduler: each epoch writes the whole curve so far to the trial (the halving
    reads it there); with --pruner moasha a dominated trial stops at its rung, without it
    nothing stops; the costs are measured first only for the halving."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'scheduler.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    at_rung(study, 0.9, 10)
    at_rung(study, 0.8, 10)
    halving = ParetoHalving(("accuracy", "params"), max_epochs=10)
    pruning = pareto_halving.ParetoScheduler(10, halving=halving)
    plain = pareto_halving.ParetoScheduler(10)
    assert pruning.measures_costs_first and not plain.measures_costs_first
    trial = study.ask()
    study._storage.set_trial_user_attr(trial._trial_id, PARAMS, 10)
    assert plain.on_epoch(trial, [0.1]) == Decision.CONTINUE
    assert study._storage.get_trial(trial._trial_id).user_attrs[CURVE] == [0.1]
    assert pruning.on_epoch(trial, [0.95, 0.5]) == Decision.CONTINUE  # epoch 2: no rung
    assert study._storage.get_trial(trial._trial_id).user_attrs[CURVE] == [0.95, 0.5]
    assert pruning.on_epoch(trial, [0.1]) == Decision.STOP  # behind both at epoch 1
    assert plain.on_epoch(trial, [0.1]) == Decision.CONTINUE


def test_a_failed_trial_is_not_compared(tmp_path):
    """A killed trial's curve is not a rival at the rung: its re-run stands for it."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'failed.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    killed = at_rung(study, 0.9, 10)
    study.tell(killed, state=TrialState.FAIL)
    second = at_rung(study, 0.1, 10**6)
    assert not ParetoHalving(("accuracy", "params"), max_epochs=10).should_stop(study, second, 1)


def test_a_trial_whose_costs_are_not_recorded_is_not_stopped(tmp_path):
    """At a rung, a trial with its curve but no measured cost has no point to rank: it goes
    on, however far behind the others' accuracy is."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'unmeasured.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    for accuracy in (0.9, 0.8, 0.7):
        at_rung(study, accuracy, 10)
    unmeasured = study.ask()
    study._storage.set_trial_user_attr(unmeasured._trial_id, CURVE, [0.01])
    halving = ParetoHalving(("accuracy", "params"), max_epochs=10)
    assert not halving.should_stop(study, unmeasured.number, 1)


def test_the_first_trial_at_a_rung_goes_on(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'first.db'}",
                                directions=["maximize", "minimize"])  # fmt: skip
    first = at_rung(study, 0.01, 10**6, epochs=3)
    assert not ParetoHalving(("accuracy", "params"), max_epochs=10).should_stop(study, first, 3)


def test_a_search_with_two_objectives_prunes_by_pareto_front_at_each_rung(tmp_path, run_here):
    """A real search, one worker, accuracy and parameter count, 4 epochs (rungs 1 and 3): each
    trial that stopped was outside the best third of the trials at its rung when it got
    there (those numbered before it: one worker runs them in turn), each that went on was in
    it; the front, the summary and the export read as before."""
    storage = f"sqlite:///{tmp_path / 'mo.db'}"
    argv = ["--space", "test_widths", "--space-module", "tests.spaces_for_tests",
            "--dataset", "sample", "--epochs", "4", "--trials", "12", "--sampler", "random",
            "--objectives", "accuracy,params", "--pruner", "moasha", "--storage", storage,
            "--study", "mo", "--checkpoint-dir", ""]  # fmt: skip
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="mo", storage=storage)
    trials = study.trials
    halving = ParetoHalving(("accuracy", "params"), max_epochs=4)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and len(pruned) < len(trials)
    for trial in trials:
        assert trial.user_attrs[PARAMS] == trial.user_attrs["param_count"]
        reached = len(trial.user_attrs[CURVE])
        for epoch in pareto_halving.rungs(4):
            if epoch > reached:
                continue
            peers = [t for t in trials[: trial.number + 1] if len(t.user_attrs[CURVE]) >= epoch]
            order = pareto_halving.ranked([halving.losses(t, epoch) for t in peers])
            kept = {peers[i].number for i in order[: max(1, len(peers) // 3)]}
            stopped_here = trial.state == TrialState.PRUNED and reached == epoch
            assert (trial.number not in kept) == stopped_here, (trial.number, epoch)
    assert all(t.state == TrialState.COMPLETE for t in study.best_trials)
    exported = run_here("search.export", "--study", "mo", "--storage", storage, "--pareto",
                        "-o", str(tmp_path / "front.yaml"), cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr


def test_every_cost_objective_has_its_attribute_named_after_its_metric():
    """The names are a schema: studies hold them (and a cost objective added later gets one)."""
    from search.tuning.records.settings import OBJECTIVES

    assert set(pareto_halving.COST_ATTRS) == set(OBJECTIVES) - {"accuracy"}
    assert pareto_halving.COST_ATTRS == {
        "params": "before_training_param_count",
        "latency": "before_training_latency_ms",
    }
