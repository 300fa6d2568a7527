"""Pause, don't kill: a trial successive halving stops is paused with its checkpoint, its rung
later promotes it, and its continuation resumes from the checkpoint and ends exactly as the
uninterrupted run of the same config; real SQLite, the real trainer and Optuna's pruner."""

import optuna
import optuna_dashboard
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

import spaces
from search.training import trainer
from search.tuning.execution.checkpoints import TrialCheckpoints
from search.tuning.execution.endings import TrialFailed
from search.tuning.execution.objective import Objective
from search.tuning.records import keys, ledger
from search.tuning.store import storage
from search.tuning.strategies import continuation, pruners
from search.tuning.strategies.scheduler import Scheduler
from tests import spaces_for_tests  # noqa: F401  registers test_tiny

CONTEXT = spaces.SpaceContext("sample", 3, 0)
CPU = torch.device("cpu")
LR = FloatDistribution(1e-3, 0.1, log=True)
AT_RUNG = continuation.THAW_RULES["rung"](3)  # ASHA's ranking: each trial's value at the rung


def rival(found: optuna.Study, rung_value: float) -> None:
    """A trial that reached rung 0 with `rung_value` (made with Optuna's add_trial): what the
    rung's ranking is made of."""
    found.add_trial(optuna.trial.create_trial(
        state=TrialState.PRUNED, params={"sgd_lr": 0.01}, distributions={"sgd_lr": LR},
        intermediate_values={1: rung_value}, system_attrs={"completed_rung_0": rung_value},
    ))  # fmt: skip


@pytest.fixture
def paused_study(tmp_path, sample):
    """Trial 1 (test_tiny, 3 epochs) paused after epoch 1: successive halving at eta 2 met it
    beside one far better rival, so it was not the best of the rung. Returns the study, the
    objective and the checkpoints."""
    opened = storage.open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    pruner = continuation.PausingSuccessiveHalving(min_resource=1, reduction_factor=2)
    found = optuna.create_study(storage=opened, direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.RandomSampler(seed=1))  # fmt: skip
    rival(found, 0.99)
    scheduler = Scheduler(100, pause=True, keep_paused=5,
                          resumable=lambda n: checkpoints.path(n).exists())  # fmt: skip
    checkpoints = TrialCheckpoints(tmp_path / "checkpoints", "c", "k", keeps=scheduler.keeps)
    objective = Objective("test_tiny", CONTEXT, sample, CPU, checkpoints=checkpoints,
                          scheduler=scheduler)  # fmt: skip
    found.optimize(objective, n_trials=1)
    return found, objective, checkpoints


def test_a_paused_trial_is_continued_when_its_rung_promotes_it_and_ends_as_if_uninterrupted(
    paused_study, sample
):
    found, objective, checkpoints = paused_study
    paused = found.trials[1]
    assert paused.state == TrialState.PRUNED and paused.user_attrs[keys.PAUSED] == 1
    assert checkpoints.path(1).exists()  # kept for a continuation
    promote = objective.scheduler.next  # queues what its rungs promote, then says what to do
    promote(found)
    assert [t.state for t in found.trials] == [TrialState.PRUNED] * 2  # not yet: 2 at the rung
    for value in (0.01, 0.02):  # later, weaker trials: now it ranks second of four, top half
        rival(found, value)
    promote(found)
    queued = found.trials[-1]
    assert queued.state == TrialState.WAITING
    assert queued.system_attrs["fixed_params"] == paused.params  # enqueued with its parameters
    assert queued.user_attrs[spaces.CONTINUES] == [1]
    promote(found)  # promoted once only
    assert len(found.get_trials(states=(TrialState.WAITING,))) == 1

    found.optimize(objective, n_trials=1)
    continued = found.trials[-1]
    assert continued.state == TrialState.COMPLETE, continued.user_attrs
    assert continued.user_attrs["resumed_after_epoch"] == 1
    assert continued.user_attrs[keys.CONTINUED_FROM] == 1
    assert continuation.described(continued) == " (continues trial 1, paused after epoch 1)"
    # and in optuna-dashboard, whose notes on both trials name the other
    notes = [
        optuna_dashboard.get_note(optuna.Trial(found, t._trial_id)) for t in (continued, paused)
    ]
    assert notes[0].startswith("## Continues trial 1\n")
    assert notes[1].startswith(f"## Paused after epoch 1, continued as trial {continued.number}\n")
    # the same config and seed, trained straight through
    uninterrupted = trainer.train(
        objective.born(optuna.trial.FixedTrial(paused.params, number=1)),
        sample.train, sample.val, sample.num_classes, CPU,
    ).history  # fmt: skip
    expected = {e.epoch: e.val_accuracy for e in uninterrupted}
    assert continued.intermediate_values == expected and continued.value == expected[3]
    # one run: the paused trial no longer counts, and its epoch is not counted twice
    counts = ledger.count_by_state(found.get_trials(deepcopy=False))
    assert (counts[TrialState.COMPLETE], counts[TrialState.PRUNED]) == (1, 3)
    trials = found.get_trials()
    assert ledger.epochs_trained(trials) == 3 + 3  # its 1 + 2, and the rivals' 3
    assert ledger.continued(trials) == {1} and not continuation.paused(trials)


def test_a_continuation_queued_but_never_run_is_not_counted_as_continued(paused_study):
    """The budget ran out with a promoted trial still queued (issue 44): the summary and the
    strategy table count it as queued, not as continued."""
    from search.tuning.results import progress

    found, objective, checkpoints = paused_study
    for value in (0.01, 0.02):
        rival(found, value)
    objective.scheduler.next(found)  # queues trial 1's continuation; nothing runs it
    trials = found.get_trials()
    assert ledger.continued(trials) == {1}  # taken: no worker may promote it again
    assert ledger.continuations_run(trials) == set()
    assert progress.paused_lines(found)[0].startswith(
        "paused: 1 trial(s); 0 continued from their checkpoints, 1 queued to continue, "
        "0 still paused"
    )
    found.optimize(objective, n_trials=1)
    assert ledger.continuations_run(found.get_trials()) == {1}
    assert progress.paused_lines(found)[0].startswith(
        "paused: 1 trial(s); 1 continued from their checkpoints, 0 still paused"
    )


def test_a_second_continuation_of_the_same_trial_is_not_needed(paused_study):
    """Two workers that promote the same trial at once queue it twice; the later one fails at
    its start, untrained, as not needed."""
    found, objective, checkpoints = paused_study
    for value in (0.01, 0.02):
        rival(found, value)
    for _ in range(2):
        found.enqueue_trial(found.trials[1].params, user_attrs={spaces.CONTINUES: [1]})
    found.optimize(objective, n_trials=2, catch=(TrialFailed,))
    first, second = found.trials[-2:]
    assert first.state == TrialState.COMPLETE and second.state == TrialState.FAIL
    assert second.user_attrs["fail_reason"] == (
        f"not needed: trial {first.number} already continues trial 1"
    )
    assert not second.intermediate_values


def test_hyperband_judges_a_continuation_in_its_origins_bracket(tmp_path):
    opened = storage.open_storage(f"sqlite:///{tmp_path / 'h.db'}")
    pruner = continuation.PausingHyperband(min_resource=1, max_resource=27)
    found = optuna.create_study(storage=opened, direction="maximize", pruner=pruner)
    for _ in range(40):
        rival(found, 0.5)
    trials = found.get_trials()
    brackets = {pruner.bracket(found, t) for t in trials}
    assert len(brackets) > 1  # the origins spread over Hyperband's brackets
    origin = next(t for t in trials if pruner.bracket(found, t) != pruner.bracket(found, trials[0]))
    found.enqueue_trial({"sgd_lr": 0.01}, user_attrs={spaces.CONTINUES: [origin.number]})
    queued = found.get_trials()[-1]
    assert pruner.bracket(found, queued) == pruner.bracket(found, origin)


def rung_study(tmp_path, rivals, paused_value, pruner=None):
    """A real SQLite study under successive halving at eta 2: rivals at rung 0 (epoch 1), and
    trial P paused there with `paused_value`, continued by trial C (queued, then started:
    continuation.take_over). Returns the study and C, a live trial that has re-reported P's
    epoch."""
    opened = storage.open_storage(f"sqlite:///{tmp_path / 'rungs.db'}")
    pruner = pruner or continuation.PausingSuccessiveHalving(min_resource=1, reduction_factor=2)
    found = optuna.create_study(storage=opened, direction="maximize", pruner=pruner)
    for value in rivals:
        rival(found, value)
    found.add_trial(optuna.trial.create_trial(
        state=TrialState.PRUNED, params={"sgd_lr": 0.01}, distributions={"sgd_lr": LR},
        intermediate_values={1: paused_value}, user_attrs={keys.PAUSED: 1},
        system_attrs={"completed_rung_0": paused_value},
    ))  # fmt: skip
    paused = found.trials[-1].number
    found.enqueue_trial({"sgd_lr": 0.01}, user_attrs={spaces.CONTINUES: [paused]})
    continued = found.ask({"sgd_lr": LR})
    assert continuation.take_over(continued) is None
    continued.report(paused_value, 1)  # resumed: the paused trial's epoch, reported again
    return found, continued


def test_a_continuation_carries_its_rung_and_is_judged_at_the_next_one(tmp_path):
    """Issue 44: with the carry of the paused trial's rung values turned off, the continuation
    was judged again at rung 0 (where it now ranks in the bottom half of 0.9, 0.8, 0.7 and
    its own 0.5) and stopped; carried, it is judged at rung 1 (epoch 2), alone there."""
    found, continued = rung_study(tmp_path, rivals=(0.9, 0.8, 0.7), paused_value=0.5)
    assert found.trials[-1].system_attrs["completed_rung_0"] == 0.5
    continued.report(0.6, 2)
    assert not continued.should_prune()


def test_hyperband_leaves_a_taken_over_trial_out_and_promotes_in_its_bracket(tmp_path):
    """test_a_taken_over_trial_no_longer_competes_at_its_rungs with Hyperband of one bracket
    (it is then successive halving at eta 2): the newcomer's 0.5 is in the top 2 of four."""
    hyperband = continuation.PausingHyperband(min_resource=1, max_resource=1, reduction_factor=2)
    found, continued = rung_study(tmp_path, rivals=(0.2, 0.3), paused_value=0.9,
                                  pruner=hyperband)  # fmt: skip
    newcomer = found.ask({"sgd_lr": LR})
    newcomer.report(0.5, 1)
    assert not newcomer.should_prune()
    later = paused_trial(found, 0.6, [0.6])  # second of 0.2, 0.3, 0.9, 0.5 and 0.6
    assert [t.number for t in hyperband.promotable(found, found.get_trials(), AT_RUNG)] == [
        later.number
    ]


def test_a_taken_over_trial_no_longer_competes_at_its_rungs(tmp_path):
    """Issue 44: without the view that leaves out taken-over trials, the paused trial and its
    continuation both held 0.9 at rung 0, and a newcomer's 0.5 was behind both (the top 2 of
    0.2, 0.3, 0.9, 0.9 and 0.5); counted once, it is in the top 2 of four."""
    found, continued = rung_study(tmp_path, rivals=(0.2, 0.3), paused_value=0.9)
    newcomer = found.ask({"sgd_lr": LR})
    newcomer.report(0.5, 1)
    assert not newcomer.should_prune()


def paused_trial(found, value, rung_values, **user_attrs):
    found.add_trial(optuna.trial.create_trial(
        state=TrialState.PRUNED, params={"sgd_lr": 0.01}, distributions={"sgd_lr": LR},
        intermediate_values={1: value}, user_attrs={keys.PAUSED: 1, **user_attrs},
        system_attrs={f"{continuation.RUNG}{r}": v for r, v in enumerate(rung_values)},
    ))  # fmt: skip
    return found.trials[-1]


def test_a_continuation_is_described_by_the_trial_it_continues_and_where_that_paused():
    def described(**attrs):
        return continuation.described(optuna.trial.create_trial(value=0.5, user_attrs=attrs))

    assert described(continued_from=3, resumed_after_epoch=2) == (
        " (continues trial 3, paused after epoch 2)"
    )
    assert described(continued_from=3) == " (continues trial 3)"
    assert described(resumed_after_epoch=2) == ""


def test_a_trial_s_rung_is_the_last_of_an_unbroken_run_of_rungs():
    def rung(*names):
        attrs = {f"{continuation.RUNG}{n}": 0.5 for n in names}
        return continuation.rung_of(optuna.trial.create_trial(value=0.5, system_attrs=attrs))

    assert (rung(), rung(0), rung(0, 1), rung(1)) == (-1, 0, 1, -1)


@pytest.mark.parametrize(("direction", "rivals", "value", "promoted"), [
    ("maximize", (0.9, 0.8, 0.7), 0.8, True),  # top 2 of 4: 0.9 and its 0.8 (a tie: promoted)
    ("maximize", (0.9, 0.8, 0.7), 0.75, False),
    ("minimize", (0.9, 0.8, 0.7), 0.75, True),  # second lowest of 0.7, 0.75, 0.8, 0.9
    ("minimize", (0.9, 0.8, 0.7), 0.85, False),
    ("maximize", (), 0.9, False),  # alone at the rung: fewer than eta to judge by
    ("maximize", (0.1,), 0.9, True),  # eta of them: the top one of two
])  # fmt: skip
def test_a_paused_trial_is_promoted_when_its_rung_value_is_in_the_top_1_over_eta(
    tmp_path, direction, rivals, value, promoted
):
    pruner = continuation.PausingSuccessiveHalving(min_resource=1, reduction_factor=2)
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", direction=direction,
                                pruner=pruner)  # fmt: skip
    for rival_value in rivals:
        rival(found, rival_value)
    paused = paused_trial(found, value, [value])
    found_now = pruner.promotable(found, found.get_trials(), AT_RUNG)
    assert [t.number for t in found_now] == ([paused.number] if promoted else [])


def test_promotion_leaves_out_taken_over_trials_and_trials_at_no_rung(tmp_path):
    pruner = continuation.PausingSuccessiveHalving(min_resource=1, reduction_factor=2)
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", direction="maximize",
                                pruner=pruner)  # fmt: skip
    for value in (0.2, 0.3):
        rival(found, value)
    taken = paused_trial(found, 0.95, [0.95])
    found.add_trial(
        optuna.trial.create_trial(value=0.9, user_attrs={keys.CONTINUES: [taken.number]})
    )
    paused_trial(found, 0.0, [])  # paused before its first rung: nothing to rank it by
    paused_trial(found, 0.1, [0.1, 0.5])  # alone at rung 1: too few there to judge it by
    mid = paused_trial(found, 0.4, [0.4])  # top 2 of 0.2, 0.3, 0.1, 0.4 at rung 0
    assert [t.number for t in pruner.promotable(found, found.get_trials(), AT_RUNG)] == [mid.number]


def test_the_most_promising_paused_trial_is_queued_first_while_there_is_room(tmp_path):
    pruner = continuation.PausingSuccessiveHalving(min_resource=1, reduction_factor=2)
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", direction="maximize",
                                pruner=pruner)  # fmt: skip
    for value in (0.1, 0.2, 0.3, 0.4):
        rival(found, value)
    low, high = paused_trial(found, 0.5, [0.5]), paused_trial(found, 0.6, [0.6])
    promotable = pruner.promotable(found, found.get_trials(), AT_RUNG)
    assert [t.number for t in promotable] == [high.number, low.number]  # the best first
    unkept = high.number  # its checkpoint is gone: the next is queued instead
    assert continuation.promote(found, lambda n: n != unkept, lambda: True, AT_RUNG) == [low.number]
    assert continuation.promote(found, lambda n: True, lambda: False, AT_RUNG) == []  # no room
    rooms = iter([True, False])
    assert continuation.promote(found, lambda n: True, lambda: next(rooms), AT_RUNG) == [
        high.number
    ]
    assert found.trials[-1].user_attrs[keys.CONTINUES] == [high.number]
    assert continuation.promote(found, lambda n: True, lambda: True, AT_RUNG) == []  # both taken
    plain = optuna.create_study(pruner=optuna.pruners.SuccessiveHalvingPruner())
    assert continuation.promote(plain, lambda n: True, lambda: True, AT_RUNG) == []


def test_a_failed_or_surplus_continuation_does_not_hold_the_paused_trial(tmp_path):
    opened = storage.open_storage(f"sqlite:///{tmp_path / 't.db'}")
    found = optuna.create_study(storage=opened, direction="maximize")
    paused = paused_trial(found, 0.5, [0.5, 0.6])
    for attrs, state in (({}, TrialState.FAIL), ({keys.NOT_NEEDED: True}, TrialState.PRUNED)):
        found.add_trial(optuna.trial.create_trial(
            state=state, user_attrs={keys.CONTINUES: [paused.number], **attrs},
        ))  # fmt: skip
    found.enqueue_trial({"sgd_lr": 0.01}, user_attrs={keys.CONTINUES: [paused.number]})
    optuna.create_study(storage=opened, study_name="beside")  # another study in the storage
    continued = found.ask({"sgd_lr": LR})
    assert continuation.take_over(continued) is None
    notes = [optuna_dashboard.get_note(optuna.Trial(found, t._trial_id))
             for t in (found.trials[continued.number], paused)]  # fmt: skip
    assert notes == [
        "## Continues trial 0\n\nPaused there after epoch 1 and continued here from its "
        "checkpoint: this trial's learning curve is the whole run.",
        f"## Paused after epoch 1, continued as trial {continued.number}\n\nTrial "
        f"{continued.number} carries this run on from its checkpoint: its learning curve is "
        "the whole run.",
    ]
    carried = found.trials[continued.number].system_attrs
    assert {k: v for k, v in carried.items() if k.startswith(continuation.RUNG)} == {
        f"{continuation.RUNG}0": 0.5, f"{continuation.RUNG}1": 0.6,
    }  # fmt: skip


def trial_at_rung(found, curve, paused=False, later=()):
    """A trial whose rung 0 was its curve's last epoch (so `curve` up to it), paused there or
    gone on to report `later` epochs after it."""
    found.add_trial(optuna.trial.create_trial(
        state=TrialState.PRUNED, params={"sgd_lr": 0.01}, distributions={"sgd_lr": LR},
        intermediate_values=dict(enumerate([*curve, *later], start=1)),
        user_attrs={keys.PAUSED: len(curve)} if paused else {},
        system_attrs={f"{continuation.RUNG}0": curve[-1]},
    ))  # fmt: skip
    return found.trials[-1]


FLAT, CLIMBING, LOW = [0.55, 0.58, 0.59, 0.60], [0.30, 0.40, 0.48, 0.55], [0.2, 0.25, 0.28, 0.3]


@pytest.mark.parametrize(("direction", "sign"), [("maximize", 1), ("minimize", -1)])
def test_thawed_by_forecast_a_climbing_curve_goes_before_a_flat_one_above_it(
    tmp_path, direction, sign
):
    """At eta 2 three trials at a rung promote one. By the value there the flat curve (0.60)
    leads the climbing one (0.55) that paused; by where each extrapolates to at epoch 50
    (0.65 against 0.89) the climbing one is thawed. As losses (minimize), the same."""
    pruner = continuation.PausingSuccessiveHalving(min_resource=4, reduction_factor=2)
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", direction=direction,
                                pruner=pruner)  # fmt: skip
    for curve in (FLAT, LOW):
        trial_at_rung(found, [sign * v for v in curve])
    climbing = trial_at_rung(found, [sign * v for v in CLIMBING], paused=True)
    trials = found.get_trials()
    assert pruner.promotable(found, trials, AT_RUNG) == []
    forecast = continuation.THAW_RULES["forecast"](50)
    assert [t.number for t in pruner.promotable(found, trials, forecast)] == [climbing.number]


def test_a_rival_that_went_on_is_forecast_from_its_curve_up_to_the_rung(tmp_path):
    """The flat rival then rose to 0.99: judged where the paused trial stopped (epoch 4), what
    it did after does not count, and the climbing trial is thawed still; the rung's epoch is
    the paused trial's, a rival's rung value and forecast are made of its first four epochs."""
    pruner = continuation.PausingSuccessiveHalving(min_resource=4, reduction_factor=2)
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", direction="maximize",
                                pruner=pruner)  # fmt: skip
    flat = trial_at_rung(found, FLAT, later=[0.9, 0.95, 0.99, 0.99])
    trial_at_rung(found, LOW)
    climbing = trial_at_rung(found, CLIMBING, paused=True)
    forecast = continuation.THAW_RULES["forecast"](50)
    judged = [forecast(t, 0, 4, found.direction) for t in (flat, climbing)]
    assert judged == pytest.approx([0.649, 0.886], abs=1e-3)  # extrapolation.forecast's means
    assert [t.number for t in pruner.promotable(found, found.get_trials(), forecast)] == [
        climbing.number
    ]


def test_too_few_epochs_before_the_rung_to_fit_are_judged_by_the_rung_value(tmp_path):
    """A rung at epoch 2: no curve is fitted from two points (extrapolation.MIN_EPOCHS), and
    the forecast rule ranks as ASHA does; a curve that diverged on the way ranks last, whatever
    its value at the rung."""
    forecast = continuation.THAW_RULES["forecast"](50)
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", direction="maximize")
    short = trial_at_rung(found, [0.3, 0.5], paused=True)
    assert forecast(short, 0, 2, found.direction) == AT_RUNG(short, 0, 2, found.direction) == 0.5
    three = trial_at_rung(found, CLIMBING[:3], paused=True)  # the fewest epochs a fit takes
    assert forecast(three, 0, 3, found.direction) > AT_RUNG(three, 0, 3, found.direction) + 0.1
    diverged = trial_at_rung(found, [0.3, 0.4, float("nan"), 0.6], paused=True)
    assert forecast(diverged, 0, 4, found.direction) == float("-inf")
    assert continuation.ranked([short, diverged], found.direction, forecast)[0] is short


def test_a_taken_over_trial_is_in_no_hyperband_bracket_not_another_one(tmp_path):
    """Three brackets (eta 3, epochs 1 to 9); study "brackets" puts trial numbers 0, 4, 6 and
    8 in bracket 1 and 1 in bracket 0. Trial 1 paused with 0.9 and trial 2 continues it (in
    bracket 0, its lineage's). In bracket 1, trial 4 paused with 0.5 beside rivals at 0.3 and
    0.2: the top one of three, promoted. Had the taken trial been put in bracket 1 (a
    surviving mutant of 2026-12-06), its 0.9 would have raised the cut there and kept trial 4
    paused."""
    hyperband = continuation.PausingHyperband(min_resource=1, max_resource=9, reduction_factor=3)
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", study_name="brackets",
                                direction="maximize", pruner=hyperband)  # fmt: skip

    def filler():  # a number taken, at no rung
        found.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))

    filler()  # 0
    taken = paused_trial(found, 0.9, [0.9])  # 1, bracket 0
    found.add_trial(optuna.trial.create_trial(  # 2: its continuation, carrying its rung value
        value=0.95, params={"sgd_lr": 0.01}, distributions={"sgd_lr": LR},
        intermediate_values={1: 0.9, 2: 0.95}, user_attrs={keys.CONTINUES: [taken.number]},
        system_attrs={f"{continuation.RUNG}0": 0.9},
    ))  # fmt: skip
    filler()  # 3
    waiting = paused_trial(found, 0.5, [0.5])  # 4, bracket 1
    filler()  # 5
    rival(found, 0.3)  # 6, bracket 1
    filler()  # 7
    rival(found, 0.2)  # 8, bracket 1
    trials = found.get_trials()
    assert [hyperband.bracket(found, trials[n]) for n in (2, 4, 6, 8)] == [0, 1, 1, 1]
    assert [t.number for t in hyperband.promotable(found, trials, AT_RUNG)] == [waiting.number]
    assert hyperband.bracket(found, trials[1]) == -1  # taken over: in none


def test_a_continuation_judged_before_it_re_reported_its_curve_is_judged_again_after(tmp_path):
    """A continuation carries its parent's rung value (0.55 at epoch 4) before it re-reports
    the epochs that led there: judged then, it has only the rung value; once its curve is
    back, the same rule (one instance, as a worker keeps it) forecasts from it."""
    forecast = continuation.THAW_RULES["forecast"](50)
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", direction="maximize")
    running = found.ask()
    found._storage.set_trial_system_attr(running._trial_id, f"{continuation.RUNG}0", 0.55)
    assert forecast(found.trials[0], 0, 4, found.direction) == 0.55
    for epoch, value in enumerate(CLIMBING, start=1):
        running.report(value, epoch)
    assert forecast(found.trials[0], 0, 4, found.direction) == pytest.approx(0.886, abs=1e-3)


def test_promotion_type_halving_holds_a_rung_s_first_trials_until_three_have_reached_it(
    tmp_path,
):
    """--pruner sha3-promotion (the ASHA paper's Algorithm 2): the first two trials at a rung
    stop there (to wait, paused) whatever their value, the third goes on only as the best of
    the three, and a waiting one is promoted once it ranks in the rung's top third; the
    stopping type (sha3) lets the first ones go on while each is the best so far."""

    def arrivals(name: str, values: list[float]) -> tuple[optuna.Study, list[bool]]:
        found = optuna.create_study(storage=f"sqlite:///{tmp_path / name}-{values}.db",
                                    direction="maximize", pruner=pruners.PRUNERS[name](9))  # fmt: skip
        stopped = []
        for value in values:
            trial = found.ask({"sgd_lr": LR})
            trial.report(value, 1)
            stopped.append(trial.should_prune())
            if stopped[-1]:  # as the scheduler pauses it (the others run on)
                trial.set_user_attr(keys.PAUSED, 1)
                found.tell(trial, state=TrialState.PRUNED)
        return found, stopped

    waited, stopped = arrivals("sha3-promotion", [0.5, 0.9, 0.7])
    assert stopped == [True, True, True]
    promoted = waited.pruner.promotable(waited, waited.get_trials(), AT_RUNG)
    assert [t.number for t in promoted] == [1]  # 0.9, the top third of three
    assert arrivals("sha3-promotion", [0.5, 0.6, 0.9])[1] == [True, True, False]
    assert arrivals("sha3", [0.5, 0.9, 0.7])[1] == [False, False, True]


def test_hybrid_halving_waits_at_the_cheap_rungs_and_at_every_rung_once_a_trial_has_finished(
    tmp_path,
):
    """--pruner sha3-hybrid: at epochs 1 and 3 a rung's first two trials wait, as the promotion
    type's do, and the third goes on as the best of three; at epoch 9 the first trial goes on
    while nothing has finished (the stopping type: the study gets a finished trial soon), and
    once one has, the next waits there."""
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'h.db'}", direction="maximize",
                                pruner=pruners.PRUNERS["sha3-hybrid"](50))  # fmt: skip

    def arrives(epoch: int, value: float) -> tuple[optuna.Trial, bool]:
        trial = found.ask({"sgd_lr": LR})
        for rung in range({1: 0, 3: 1, 9: 2}[epoch]):  # the rungs below it, as carried
            found._storage.set_trial_system_attr(trial._trial_id, f"{continuation.RUNG}{rung}",
                                                 value)  # fmt: skip
        trial.report(value, epoch)
        return trial, trial.should_prune()

    assert arrives(1, 0.5)[1] and arrives(3, 0.9)[1]  # the first at each: waits
    assert arrives(1, 0.6)[1] and not arrives(1, 0.9)[1]  # the second waits, the third goes on
    first, stopped = arrives(9, 0.8)
    assert not stopped  # the first at epoch 9, nothing finished: goes on
    found.tell(first, 0.8)
    assert arrives(9, 0.95)[1]  # the best there, but a trial has finished: it waits
