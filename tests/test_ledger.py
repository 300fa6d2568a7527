"""The ledger's reading of a study (search/tuning/records/ledger.py): what is counted once, the
best first, the names of the metrics, failing a trial someone else ended, dropping queued
trials while another worker takes one, queuing a config once; on real SQLite studies."""

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from search.tuning.records import keys, ledger

X = {"x": FloatDistribution(0.0, 1.0)}


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'ledger.db'}", direction="maximize")


def made(state=TrialState.COMPLETE, value=None, **user_attrs):
    return create_trial(
        state=state, value=value, params={"x": 0.5}, distributions=X, user_attrs=user_attrs,
    )  # fmt: skip


def test_a_paused_trial_is_counted_once_as_its_continuation_unless_that_was_not_needed():
    """Trial 0 paused, trial 1 its continuation: one run. Trial 2 paused, trial 3 a surplus
    continuation of it (not needed): trial 2 still stands for itself."""
    trials = [
        made(TrialState.PRUNED),
        made(TrialState.COMPLETE, 0.5, **{keys.CONTINUES: [0], keys.CONTINUED_FROM: 0}),
        made(TrialState.PRUNED),
        made(TrialState.FAIL, **{keys.CONTINUES: [2], keys.NOT_NEEDED: True}),
    ]  # fmt: skip
    for number, trial in enumerate(trials):
        trial.number = number
    assert ledger.continued(trials) == {0}
    counts = ledger.count_by_state(trials)
    assert counts[TrialState.COMPLETE] == 1 and counts[TrialState.PRUNED] == 1
    assert ledger.finished(counts) == 2


def test_a_continuation_counts_as_run_once_it_has_started(study):
    """A continuation queued (WAITING) has not taken its paused trial over; once a worker
    runs it, it has."""
    study.enqueue_trial({"x": 0.5}, user_attrs={keys.CONTINUED_FROM: 0})
    assert ledger.continuations_run(study.get_trials()) == set()
    study.ask()
    assert ledger.continuations_run(study.get_trials()) == {0}


@pytest.mark.parametrize(
    "direction, order", [("maximize", [2, 0, 3, 1]), ("minimize", [1, 0, 3, 2])]
)
def test_the_best_come_first_by_the_direction_and_the_earlier_of_equals_first(direction, order):
    trials = [made(value=v) for v in (0.5, 0.1, 0.9, 0.5)] + [made(TrialState.PRUNED)]
    for number, trial in enumerate(trials):
        trial.number = number
    found = ledger.best_first(trials, StudyDirection[direction.upper()])
    assert [t.number for t in found] == order


def test_the_best_trial_is_none_before_one_completes_and_with_several_objectives(tmp_path):
    single = optuna.create_study(direction="maximize")
    assert ledger.best(single) is None
    single.add_trial(made(value=0.3))
    single.add_trial(made(value=0.7))
    assert ledger.best(single).value == 0.7
    several = optuna.create_study(directions=["maximize", "minimize"])
    several.add_trial(create_trial(values=[0.5, 1.0]))
    assert ledger.best(several) is None


def test_metrics_are_named_as_the_study_names_them_or_by_number():
    named = optuna.create_study(directions=["maximize", "minimize"])
    assert ledger.metric_names(named) == ["value0", "value1"]
    named.set_metric_names(["accuracy", "params"])
    assert ledger.metric_names(named) == ["accuracy", "params"]


def test_failing_a_trial_someone_else_ended_says_so_and_leaves_it(study):
    trial = study.ask()
    study.tell(trial, 0.5)
    assert not ledger.fail(study, study.trials[0], "too late")
    assert study.trials[0].state == TrialState.COMPLETE
    assert keys.FAIL_REASON not in study.trials[0].user_attrs
    running = study.ask()
    assert ledger.fail(study, study.trials[1], "its worker died")
    assert study.trials[1].state == TrialState.FAIL
    assert study.trials[1].user_attrs[keys.FAIL_REASON] == "its worker died"
    assert running.number == 1


def test_queued_trials_are_dropped_but_one_another_worker_just_took(study, monkeypatch):
    """Three queued; between the drop's look and its taking them, another worker takes the
    first (the look is held back, as a slower process sees it): the first is left to that
    worker, the two after it are dropped as not needed."""
    for x in (0.1, 0.2, 0.3):
        study.enqueue_trial({"x": x})
    looked = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    taken = study.ask()  # another worker's: the first queued, now RUNNING
    monkeypatch.setattr(study, "get_trials", lambda deepcopy, states: looked)
    assert ledger.drop_queued(study, "the study is done") == [1, 2]
    monkeypatch.undo()
    trials = study.get_trials()
    assert trials[taken.number].state == TrialState.RUNNING
    assert [t.state for t in trials[1:]] == [TrialState.FAIL] * 2
    assert all(t.user_attrs[keys.NOT_NEEDED] for t in trials[1:])
    assert all(t.user_attrs[keys.FAIL_REASON] == "the study is done" for t in trials[1:])


def test_a_config_is_queued_once_with_its_attributes(study):
    queued = [({"x": 0.25}, {"source": "earlier"}), ({"x": 0.75}, {})]
    assert ledger.enqueue_once(study, queued) == 2
    assert ledger.enqueue_once(study, queued + [({"x": 0.5}, {})]) == 1
    trials = study.get_trials()
    # a queued trial's params wait in Optuna's fixed_params until a worker takes it
    assert [t.system_attrs["fixed_params"] for t in trials] == [
        {"x": 0.25}, {"x": 0.75}, {"x": 0.5}
    ]  # fmt: skip
    assert trials[0].user_attrs == {"source": "earlier"}
