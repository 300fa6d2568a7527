"""The replay's simulated clock (search/bench/replay/simulator.py) on curves written by hand,
so that every epoch's end is worked out here: two workers, each trial's epochs taking the
seconds its curve says, ties broken by when an epoch was started, the budget's stop, a
training that diverges, a curve longer than the study's epochs."""

import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from search.bench.replay import simulator
from search.tuning.records import keys
from search.tuning.records.settings import StudySettings

# trial number -> its curve: accuracy after each epoch, seconds each epoch took
CURVES = {
    0: simulator.Curve((0.1, 0.2, 0.3), (1.0, 1.0, 1.0)),
    1: simulator.Curve((0.5, 0.6, 0.7), (2.0, 2.0, 2.0)),
    2: simulator.Curve((0.9, 0.9, 0.9), (1.0, 1.0, 1.0)),
}


def replay(curves=CURVES, workers=2, trials=3, budget=0, epochs=3, pruner="none"):
    settings = StudySettings(space="hand", dataset="made", epochs=epochs, trials=trials,
                             sampler="random", pruner=pruner, epoch_budget=budget)  # fmt: skip
    return simulator.replay(settings, lambda trial: {"n": trial.number},
                            lambda params: curves[params["n"]], workers, "hand")  # fmt: skip


def test_two_workers_take_trials_as_they_free_up_on_the_simulated_clock():
    """Trials 0 and 1 start at 0; 0 ends at 3 s (1 of trial 1's epochs done by then: 4 in
    all) and trial 2 starts there; at 4 s and at 6 s trial 1's epoch, started first, ends
    before trial 2's."""
    replayed = replay()
    assert [(c.epochs, c.seconds, c.value, c.number) for c in replayed.completions] == [
        (4, 3.0, 0.3, 0), (8, 6.0, 0.7, 1), (9, 6.0, 0.9, 2),
    ]  # fmt: skip
    assert (replayed.epochs, replayed.seconds) == (9, 6.0)
    assert [replayed.best_by(e) for e in (3, 4, 7, 8, 9)] == [None, 0.3, 0.3, 0.7, 0.9]
    assert replayed.epochs_to_reach(0.7) == 8 and replayed.epochs_to_reach(0.95) is None
    study = replayed.study
    assert (study.study_name, study.direction) == ("hand", StudyDirection.MAXIMIZE)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert [t.value for t in study.trials] == [0.3, 0.7, 0.9]
    assert study.trials[1].intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7}


def test_one_worker_runs_them_one_after_another():
    replayed = replay(workers=1)
    assert [(c.epochs, c.seconds) for c in replayed.completions] == [(3, 3.0), (6, 9.0), (9, 12.0)]


def test_the_replay_stops_at_the_first_trial_s_end_once_the_budget_is_trained():
    """A budget of 5: trial 0 ends with 4 trained, so trial 2 starts; trial 1 ends at 8."""
    replayed = replay(budget=5, trials=10)
    assert replayed.epochs == 8
    assert [c.number for c in replayed.completions] == [0, 1]
    assert replayed.study.trials[2].state == TrialState.RUNNING  # cut off by the budget
    exactly = replay(budget=4, trials=10)  # trial 0's end trains the 4th epoch: the stop
    assert (exactly.epochs, [c.number for c in exactly.completions]) == (4, [0])


def test_a_training_that_diverges_is_pruned_at_that_epoch_unreported():
    curves = {**CURVES, 0: simulator.Curve((0.1,), (1.0, 1.0))}
    assert curves[0].diverges and not CURVES[0].diverges
    replayed = replay(curves, workers=1)
    first = replayed.study.trials[0]
    assert first.state == TrialState.PRUNED and first.intermediate_values == {1: 0.1}
    assert first.user_attrs[keys.PRUNE_REASON] == "the training loss became nan in epoch 2"
    assert [(c.epochs, c.number) for c in replayed.completions] == [(5, 1), (8, 2)]


def test_a_curve_longer_than_the_study_s_epochs_ends_at_its_last_epoch():
    replayed = replay(epochs=2, workers=1)
    assert [(c.epochs, c.value) for c in replayed.completions] == [(2, 0.2), (4, 0.6), (6, 0.9)]
    assert replayed.seconds == pytest.approx(8.0)


def test_a_trial_the_pruner_stops_at_its_last_epoch_completes_as_the_live_trainer_ends_it():
    """Successive halving at eta 3 has rungs at epochs 1 and 3: trial 1 leads at the first
    and trails trial 0 at the last, where the pruner stops it; it trained every epoch, so it
    completes (the trainer is done: TrainResult.stopped_early is False), as in search.run.
    A replay of 2026-12-06 pruned it there, and on 9-epoch curves paused such trials too."""
    curves = {0: simulator.Curve((0.9, 0.9, 0.9), (1.0, 1.0, 1.0)),
              1: simulator.Curve((0.95, 0.2, 0.2), (1.0, 1.0, 1.0))}  # fmt: skip
    replayed = replay(curves, workers=1, trials=2, pruner="sha3")
    assert [(t.state, t.value) for t in replayed.study.trials] == [
        (TrialState.COMPLETE, 0.9), (TrialState.COMPLETE, 0.2),
    ]  # fmt: skip
    assert [c.number for c in replayed.completions] == [0, 1]
