"""The strategy instrument's accounting (search/bench/strategies.py), on a study made with
Optuna's add_trial: where in the budget each trial's epochs fell, and the best found by then."""

import datetime

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from search.bench import strategies

START = datetime.datetime(2026, 12, 4, 12, 0, 0)


def trial(state, epochs, begin, end, value=None, resumed=0):
    """A trial that ran from `begin` to `end` seconds, reporting `epochs` epochs."""
    return optuna.trial.create_trial(
        state=state, value=value, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
        intermediate_values={e: 0.1 * e for e in range(1, epochs + 1)},
        user_attrs={"resumed_after_epoch": resumed} if resumed else {},
    )  # fmt: skip


def study_of(rows) -> optuna.Study:
    found = optuna.create_study(direction="maximize")
    for state, epochs, begin, end, value, resumed in rows:
        made = trial(state, epochs, begin, end, value, resumed)
        made.datetime_start = START + datetime.timedelta(seconds=begin)
        made.datetime_complete = START + datetime.timedelta(seconds=end)
        found.add_trial(made)
    return found


def test_the_best_at_each_share_of_the_budget_counts_the_epochs_trained_by_then():
    """Two workers: trial 0 trains 4 epochs over 0-40 s and completes at 0.5; trial 1, 2
    epochs over 0-10 s, is pruned; trial 2 trains 4 over 10-50 s and completes at 0.7; trial
    3 continues a paused run after its epoch 2 and trains 2 more over 40-60 s, completing at
    0.9. Budget 8 epochs: 25% (2 epochs) is reached at 10 s, before anything completed; 50%
    (4) at 20 s; 100% (8) at 40 s, when trial 0 completes. Trials 2 and 3, in flight then,
    finish after the budget: they are not among its improvements (counted there until
    2026-12-06, with epochs past the budget)."""
    found = study_of([
        (TrialState.COMPLETE, 4, 0, 40, 0.5, 0),
        (TrialState.PRUNED, 2, 0, 10, None, 0),
        (TrialState.COMPLETE, 4, 10, 50, 0.7, 0),
        (TrialState.COMPLETE, 4, 40, 60, 0.9, 2),
    ])  # fmt: skip
    timeline = strategies.Timeline.of(found.get_trials())
    assert timeline.events == [5, 10, 10, 20, 20, 30, 30, 40, 40, 50, 50, 60]
    search = strategies.read_search("x", 0, 60.0, found, budget=8)
    assert search.best == {0.25: None, 0.5: None, 1.0: 0.5}
    assert search.winner.number == 0 and search.epochs == 12 and search.trials == 4
    assert search.continued == 0
    assert search.curve == [(8, 0.5)]  # it ended with the 8th epoch (and a 9th beside it)
    assert search.epochs_to_reach(0.5) == 8 and search.epochs_to_reach(0.6) is None


def test_a_warm_start_s_source_epochs_are_charged_to_its_budget():
    """The same search with 4 epochs spent before it (a source study): by 25% of the budget
    of 8 (2 epochs) and by 50% (4) it had found nothing of its own; by 100% it had trained
    4 epochs of its own, at 20 s, before trial 0 completed; so nothing within the budget."""
    found = study_of([
        (TrialState.COMPLETE, 4, 0, 40, 0.5, 0),
        (TrialState.PRUNED, 2, 0, 10, None, 0),
        (TrialState.COMPLETE, 4, 10, 50, 0.7, 0),
    ])  # fmt: skip
    search = strategies.read_search("x", 0, 50.0, found, budget=8, charged=4)
    assert search.best == {0.25: None, 0.5: None, 1.0: None} and search.curve == []
    longer = strategies.read_search("x", 0, 50.0, found, budget=13, charged=4)
    assert longer.best[1.0] == 0.5 and longer.curve == [(4 + 9, 0.5)]  # its 9th own epoch


def test_a_warm_start_s_source_must_not_have_searched_the_target_s_classes():
    from argparse import Namespace

    from registry import UsageError

    apart = Namespace(strategy_classes="cat,dog", transfer_source_classes="ship,truck")
    strategies.check_classes_apart(apart)
    for target, shown in (("", "all"), ("cat,ship", "cat,ship")):  # all classes, or one shared
        with pytest.raises(UsageError) as refused:
            strategies.check_classes_apart(
                Namespace(strategy_classes=target, transfer_source_classes="ship,truck")
            )
        assert str(refused.value) == (
            "the warm start's source study (--transfer-source-classes ship,truck) shares "
            f"classes with the searches' (--strategy-classes {shown}); give them other classes"
        )


def test_random_search_runs_first_wherever_it_is_named():
    """Every other row's epochs to reach random's final best need random's searches first."""
    assert strategies.run_order(["asha", "default", "random", "pbt"]) == [
        "random", "asha", "default", "pbt"]  # fmt: skip


def test_the_pareto_section_counts_each_front_by_the_epochs_trained_when_its_trials_ended():
    """Two objectives (accuracy, parameters), epochs read from the trials' curves: trial 0
    (4 epochs over 0-40 s, 0.6 with 1,000 parameters), trial 1 (pruned after 1 epoch, 0-10 s),
    trial 2 (4 epochs over 10-50 s, 0.8 with 100,000). By 5 epochs trained (at 30 s) nothing
    had ended; by 9 (at 50 s) both had. The hypervolume from (error 1, log10 size 6) is the
    union of the two rectangles each point dominates, computed here by hand."""
    from search.bench import pareto
    from search.tuning.records.keys import CURVE

    found = optuna.create_study(directions=["maximize", "minimize"])
    for state, epochs, begin, end, values in [
        (TrialState.COMPLETE, 4, 0, 40, [0.6, 1000.0]),
        (TrialState.PRUNED, 1, 0, 10, None),
        (TrialState.COMPLETE, 4, 10, 50, [0.8, 100000.0]),
    ]:  # fmt: skip
        made = optuna.trial.create_trial(
            state=state, values=values, params={"x": 0.5},
            distributions={"x": FloatDistribution(0, 1)}, user_attrs={CURVE: [0.5] * epochs},
        )  # fmt: skip
        made.datetime_start = START + datetime.timedelta(seconds=begin)
        made.datetime_complete = START + datetime.timedelta(seconds=end)
        found.add_trial(made)
    search = pareto.read_pareto_search("moasha", 0, 50.0, found)
    assert search.trials == 3 and search.pruned == 1
    assert search.front_at(5) == []
    assert [value for point in search.front_at(9) for value in point] == pytest.approx(
        [0.4, 3.0, 0.2, 5.0]
    )
    by_hand = (1 - 0.4) * (6 - 3) + (1 - 0.2) * (6 - 5) - (1 - 0.4) * (6 - 5)
    assert pareto.hypervolume(search.front_at(9), (1.0, 6.0)) == pytest.approx(by_hand)


def test_a_spread_is_the_mean_and_standard_deviation_in_percent():
    assert strategies.spread([]) == "-"
    assert strategies.spread([0.5]) == "50.00% ± 0.00"
    assert strategies.spread([0.4, 0.6]) == "50.00% ± 14.14"


def test_only_a_warm_start_is_charged_its_source_s_epochs():
    from argparse import Namespace

    args = Namespace(transfer_source_budget=40)
    assert strategies.charge_of("tpe-hyperband-warm", args) == 40
    assert strategies.charge_of("asha", args) == 0


def test_a_trial_not_yet_started_or_ended_spends_no_epochs_in_the_timeline():
    """A queued trial (no start) and a running one (no end) numbered first, then the two of
    the first test: their epochs alone are in the timeline."""
    found = optuna.create_study(direction="maximize")
    queued = trial(TrialState.WAITING, 0, 0, 0)
    found.add_trial(queued)
    running = trial(TrialState.RUNNING, 2, 0, 0)
    running.datetime_start = START
    found.add_trial(running)
    for state, epochs, begin, end, value in ((TrialState.COMPLETE, 4, 0, 40, 0.5),
                                             (TrialState.PRUNED, 2, 0, 10, None)):  # fmt: skip
        made = trial(state, epochs, begin, end, value)
        made.datetime_start = START + datetime.timedelta(seconds=begin)
        made.datetime_complete = START + datetime.timedelta(seconds=end)
        found.add_trial(made)
    timeline = strategies.Timeline.of(found.get_trials())
    assert timeline.events == [5, 10, 10, 20, 30, 40]
    assert timeline.reached(6) == 40 and timeline.reached(7) == float("inf")


def test_the_best_is_the_first_of_equals_by_when_they_ended_and_the_highest_by_then():
    """Trial 0 ends last (at 40 s) with 0.8; trials 1 and 2 end at 20 s and 30 s with 0.5
    each; one worker's worth of epochs a second each. The improvements, in the order the
    trials ended: 0.5 (trial 1, its tie not one), then 0.8."""
    found = study_of([
        (TrialState.COMPLETE, 10, 30, 40, 0.8, 0),
        (TrialState.COMPLETE, 10, 10, 20, 0.5, 0),
        (TrialState.COMPLETE, 10, 20, 30, 0.5, 0),
    ])  # fmt: skip
    search = strategies.read_search("x", 3, 60.0, found, budget=30)
    assert (search.strategy, search.seed, search.seconds) == ("x", 3, 60.0)
    assert search.curve == [(10, 0.5), (30, 0.8)]
    assert search.best == {0.25: None, 0.5: 0.5, 1.0: 0.8}
    assert search.winner.number == 0
    at_its_end = strategies.read_search("x", 3, 60.0, found, budget=20)
    assert at_its_end.best[1.0] == 0.5  # trial 2 ended with the 20th epoch: in
