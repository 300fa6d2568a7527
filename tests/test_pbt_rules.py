"""Population-based training's rules on real SQLite studies whose segments are made with
Optuna's add_trial and ask, in milliseconds (test_pbt.py runs whole populations through
search.run, minutes a mutant): the settings --scheduler pbt implies, a generation queued once
its every member has finished, who exploits whom, which segment is surplus, where a segment
stops, which checkpoints stay, the lineage the report draws."""

import dataclasses

import optuna
import pytest
from optuna.trial import TrialState

from registry import UsageError
from search.training import config
from search.tuning.records import config_attrs, keys
from search.tuning.records.settings import StudySettings
from search.tuning.strategies import pbt
from search.tuning.strategies.scheduler import Decision, Next, NotNeeded

POPULATION = pbt.Population(size=4, interval=2, epochs=5, seed=0)  # generations end at 2, 4, 5
PLAIN, NESTED = config_attrs.split(config.TrialConfig(model="mlp", epochs=5, lr=0.1,
                                                      weight_decay=1e-4))  # fmt: skip
CONFIG_ATTRS = {"config": PLAIN, **{config_attrs.PREFIX + k: v for k, v in NESTED.items()}}


@pytest.fixture
def study(tmp_path):
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'pbt.db'}", direction="maximize")


def segment(study, generation, member, value, state=TrialState.PRUNED, epochs=2, changes=(),
            **attrs):  # fmt: skip
    """A member's finished segment of `generation`, its curve `value` at every epoch."""
    study.add_trial(optuna.trial.create_trial(
        state=state, params={}, distributions={},
        value=value if state == TrialState.COMPLETE else None,
        intermediate_values={e: value for e in range(1, epochs + 1)},
        user_attrs={keys.PBT: {"generation": generation, "member": member, "donor": None,
                               "changes": list(changes)}, **CONFIG_ATTRS, **attrs},
    ))  # fmt: skip
    return study.trials[-1]


def generation_0(study, values=(0.9, 0.8, 0.7, 0.6)):
    for member, value in enumerate(values):
        segment(study, 0, member, value)


def test_pbt_implies_no_pruner_and_a_trial_for_each_member_s_each_interval():
    assert pbt.implied("pbt", None, None, 9, None) == {
        "scheduler": "pbt", "population": pbt.DEFAULT_POPULATION, "pbt_interval": 2,
        "pruner": "none", "trials": pbt.DEFAULT_POPULATION * 5,
    }  # fmt: skip
    assert pbt.implied("pbt", 3, 4, 9, "hyperband") == {
        "scheduler": "pbt", "population": 3, "pbt_interval": 4, "pruner": "hyperband",
        "trials": 9,
    }  # fmt: skip
    assert pbt.implied("pbt", 2, None, 3, None)["pbt_interval"] == 1  # never 0
    assert pbt.implied("", None, None, 9, "sha") == {
        "scheduler": "", "population": 0, "pbt_interval": 0,
    }  # fmt: skip


@pytest.mark.parametrize(("flag", "message"), [
    ((4, None), "--population is for --scheduler pbt"),
    ((None, 2), "--pbt-interval is for --scheduler pbt"),
])  # fmt: skip
def test_population_flags_without_pbt_are_refused(flag, message):
    with pytest.raises(UsageError) as refused:
        pbt.implied("", *flag, 9, None)
    assert str(refused.value) == message


PBT_SETTINGS = StudySettings(space="mlp", dataset="sample", epochs=4, scheduler="pbt",
                             population=4, pbt_interval=1, pruner="none",
                             checkpoint_dir="ckpt")  # fmt: skip


INTERVAL = ("--pbt-interval must be at least 1 and below --epochs 4, so that members exploit "
            "at least once")  # fmt: skip
STOPS_ITSELF = ("--scheduler pbt stops and copies members itself: leave out --pruner and "
                "--pause-pruned")  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [
    ({"objectives": ("accuracy", "params")},
     "--scheduler pbt ranks members by one objective: accuracy alone"),
    ({"checkpoint_dir": ""}, "--scheduler pbt needs --checkpoint-dir: members copy each other's"),
    ({"pause_pruned": True}, STOPS_ITSELF),
    ({"pruner": "sha"}, STOPS_ITSELF),
    ({"population": 1}, "--population must be at least 2: members exploit each other"),
    ({"pbt_interval": 0}, INTERVAL),
    ({"pbt_interval": 4}, INTERVAL),
])  # fmt: skip
def test_a_population_that_cannot_run_is_refused(change, message):
    pbt.check(PBT_SETTINGS)  # these settings run
    pbt.check(dataclasses.replace(PBT_SETTINGS, population=2, pbt_interval=3))
    with pytest.raises(UsageError) as refused:
        pbt.check(dataclasses.replace(PBT_SETTINGS, **change))
    assert str(refused.value) == message


def test_a_population_s_generations_end_at_each_interval_and_the_last_epoch():
    assert POPULATION.generations == 3
    assert [POPULATION.last_epoch(g) for g in range(3)] == [2, 4, 5]
    assert pbt.Population.of(PBT_SETTINGS) == pbt.Population(4, 1, 4, 0)


def test_generation_0_has_room_until_its_members_are_finished_running_or_queued(study):
    segment(study, 0, 0, 0.5)
    segment(study, 0, 1, 0.5, state=TrialState.COMPLETE)
    study.ask()  # running, not yet a segment (start_segment makes it one)
    trials = study.get_trials()
    assert POPULATION.fresh_room(trials) is True  # the running one has no generation yet
    assert POPULATION.has_work(trials) is True
    for member in (2, 3):
        segment(study, 0, member, 0.5, state=TrialState.FAIL)  # failed: a re-run comes
    assert POPULATION.fresh_room(study.get_trials()) is True
    study.enqueue_trial({}, user_attrs={keys.PBT: {"generation": 0, "member": 2}})
    assert POPULATION.fresh_room(study.get_trials()) is True  # 3 of 4
    segment(study, 0, 3, 0.5)
    trials = study.get_trials()
    assert POPULATION.fresh_room(trials) is False
    assert POPULATION.has_work(trials) is True  # the queued one
    assert not pbt.Population(3, 2, 5, 0).has_work(
        study.get_trials(states=(TrialState.PRUNED, TrialState.COMPLETE))
    )


def test_the_next_generation_is_queued_once_every_member_has_finished_its_segment(study):
    generation_0(study, values=(0.9, 0.8, 0.7))
    assert POPULATION.plan(study) == 0  # a member still training
    segment(study, 0, 3, 0.6)
    assert POPULATION.plan(study) == 4
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs[keys.PBT]["generation"] for t in queued] == [1] * 4
    assert sorted(t.user_attrs[keys.PBT]["member"] for t in queued) == [0, 1, 2, 3]
    assert POPULATION.plan(study) == 0  # the newest generation is 1 now, unfinished


def test_the_last_generation_is_queued_after_the_one_before_it(study):
    for member in range(4):
        segment(study, 1, member, 0.5, epochs=4)
    assert POPULATION.plan(study) == 4
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert {t.user_attrs[keys.PBT]["generation"] for t in queued} == {2}


def test_the_last_generation_queues_nothing_after_it(study):
    for member in range(4):
        segment(study, 2, member, 0.5, state=TrialState.COMPLETE, epochs=5)
    assert POPULATION.plan(study) == 0
    assert POPULATION.done(study.get_trials())
    assert not POPULATION.done(study.get_trials()[:3])
    assert POPULATION.plan(optuna.create_study()) == 0  # nothing yet


def test_the_worst_quarter_copies_the_best_quarter_and_the_others_go_on_as_they_were(study):
    generation_0(study, values=(0.6, 0.9, 0.7, 0.8))  # member 1 best, member 0 worst
    members = pbt.finished_members(study.get_trials(), 0)
    planned = {s.user_attrs[keys.PBT]["member"]: s for s in POPULATION.next_generation(members, 0)}
    worst = planned[0]
    assert worst.user_attrs[keys.PBT]["donor"] == 1
    assert worst.user_attrs[keys.CONTINUES] == [1]  # the donor's checkpoint
    [change] = worst.user_attrs[keys.PBT]["changes"]
    assert change["start_fraction"] == 2 / 5
    assert change["lr"] in (pytest.approx(0.12), pytest.approx(0.08))
    assert change["weight_decay"] in (pytest.approx(1.2e-4), pytest.approx(0.8e-4))
    for member in (1, 2, 3):
        assert planned[member].user_attrs[keys.PBT] == {
            "generation": 1, "member": member, "donor": None, "changes": [],
        }  # fmt: skip
        assert planned[member].user_attrs[keys.CONTINUES] == [member]
    again = {s.user_attrs[keys.PBT]["member"]: s for s in POPULATION.next_generation(members, 0)}
    assert again == planned  # the same draw on every worker


@pytest.mark.parametrize(("values", "copied"), [
    ((0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), {0: {6, 7}, 1: {6, 7}}),  # 8: two copy two
    ((0.3, 0.2), {1: {0}}),
    ((0.3, 0.2, 0.1), {2: {0}}),
])  # fmt: skip
def test_a_quarter_is_rounded_up_and_never_more_than_half(tmp_path, values, copied):
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'q.db'}", direction="maximize")
    generation_0(found, values=values)
    population = pbt.Population(len(values), 2, 5, 0)
    donors = {}
    for planned in population.next_generation(pbt.finished_members(found.trials, 0), 0):
        attrs = planned.user_attrs[keys.PBT]
        if attrs["donor"] is not None:
            donors[attrs["member"]] = attrs["donor"]
    assert set(donors) == set(copied)
    assert all(donors[member] in allowed for member, allowed in copied.items())


def test_a_segment_that_diverged_before_its_interval_s_end_ranks_last(study):
    generation_0(study, values=(0.9, 0.8, 0.7))
    segment(study, 0, 3, 0.95, epochs=1)  # best at epoch 1, stopped before epoch 2
    members = pbt.finished_members(study.get_trials(), 0)
    donors = [s.user_attrs[keys.PBT]["donor"] for s in POPULATION.next_generation(members, 0)]
    assert donors == [None, None, None, 0]


def test_a_member_s_first_finished_segment_is_its_own_and_a_surplus_one_is_not_counted(study):
    first = segment(study, 1, 0, 0.5)
    segment(study, 1, 0, 0.6)  # a second, surplus run of member 0
    segment(study, 1, 1, 0.5)
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.PRUNED, params={}, distributions={}, intermediate_values={},
        user_attrs={keys.NOT_NEEDED: True, keys.PBT: {"generation": 1, "member": 2}},
    ))  # fmt: skip
    found = pbt.finished_members(study.get_trials(), 1)
    assert {member: trial.number for member, trial in found.items()} == {0: first.number, 1: 2}
    assert pbt.generation_of(study.trials[3]) is None


def test_a_generation_0_trial_becomes_its_own_member_and_a_second_segment_is_not_needed(study):
    scheduler = pbt.PopulationScheduler(12, population=POPULATION)
    born = config.TrialConfig(model="mlp", epochs=5)
    fresh = study.ask()
    assert scheduler.start(fresh, born) == born
    assert fresh.user_attrs[keys.PBT] == {"generation": 0, "member": 0, "donor": None,
                                          "changes": []}  # fmt: skip
    change = {"start_fraction": 0.4, "lr": 0.2, "weight_decay": 0.0, "augment": {}}
    for _ in range(2):
        study.enqueue_trial({}, user_attrs={keys.PBT: {"generation": 1, "member": 0,
                                                       "changes": [change]}})  # fmt: skip
    first, second = study.ask(), study.ask()
    assert scheduler.start(first, born) == born.replace(changes=[change])
    with pytest.raises(NotNeeded, match="trial 1 already runs member 0 in generation 1"):
        scheduler.start(second, born)
    study.tell(first, state=TrialState.FAIL)  # failed: a later one may run the member
    assert pbt.start_segment(second, born) == born.replace(changes=[change])
    study.enqueue_trial({}, user_attrs={keys.PBT: {"generation": 1, "member": 0,
                                                   "changes": [change]}})  # fmt: skip
    third = study.ask()  # behind a failed one and a running one of the same member
    with pytest.raises(NotNeeded, match="trial 2 already runs member 0 in generation 1"):
        scheduler.start(third, born)


def test_a_segment_stops_at_its_interval_s_end_and_says_so(study):
    scheduler = pbt.PopulationScheduler(12, population=POPULATION)
    trial = study.ask(fixed_distributions={})
    trial.set_user_attr(keys.PBT, {"generation": 1, "member": 0})
    assert pbt.stop_after(trial, POPULATION) == 4
    assert scheduler.on_epoch(trial, [0.1, 0.2, 0.3]) is Decision.CONTINUE
    assert scheduler.on_epoch(trial, [0.1, 0.2, 0.3, 0.4]) is Decision.STOP
    assert scheduler.ended(trial, Decision.STOP, [0.1, 0.2, 0.3, 0.4]) == (
        "interval over after epoch 4: the population exploits"
    )
    assert scheduler.ended(trial, Decision.STOP, [0.1, 0.2, 0.3]) == (
        "pruned after epoch 3 at val_accuracy 0.3000"
    )


def test_the_scheduler_queues_the_next_generation_and_waits_for_it_rather_than_sample(study):
    scheduler = pbt.PopulationScheduler(12, population=POPULATION)
    generation_0(study, values=(0.9, 0.8, 0.7))
    under_way = study.ask()
    under_way.set_user_attr(keys.PBT, {"generation": 0, "member": 3})
    assert scheduler.next(study) is Next.WAIT  # generation 0 is full; nothing queued yet
    study.tell(under_way, state=TrialState.PRUNED)
    assert scheduler.next(study) is Next.START  # generation 1 queued by this call
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 4
    assert pbt.PopulationScheduler(4, population=POPULATION).next(study) is Next.DONE  # target
    budgeted = pbt.PopulationScheduler(100, epoch_budget=6, population=POPULATION)
    assert budgeted.next(study) is Next.DONE  # 3 members' 2 epochs trained
    assert dataclasses.replace(budgeted, epoch_budget=7).next(study) is Next.START


def test_a_fresh_trial_is_surplus_behind_a_whole_generation_0_and_a_segment_by_the_target(study):
    scheduler = pbt.PopulationScheduler(5, population=POPULATION)
    generation_0(study)
    segment(study, 1, 0, 0.5)
    fresh = study.ask()
    trials = study.get_trials()
    assert scheduler.claim(fresh, trials) == (
        "not needed: 4 earlier trials had finished or were under way"
    )
    assert pbt.PopulationScheduler(5, population=pbt.Population(5, 2, 5, 0)).claim(
        fresh, trials) is None  # fmt: skip
    fresh.set_user_attr(keys.PBT, {"generation": 1, "member": 1})
    assert scheduler.claim(fresh, study.get_trials()) == (
        "not needed: 5 earlier trials had finished or were under way"
    )
    assert (
        pbt.PopulationScheduler(6, population=POPULATION).claim(fresh, study.get_trials()) is None
    )


def test_the_kept_checkpoints_are_those_the_next_generation_goes_on_from(study):
    assert pbt.kept([], 4) == set()
    generation_0(study)
    assert pbt.kept(study.get_trials(), 4) == {0, 1, 2, 3}
    segment(study, 1, 0, 0.5)  # the first of generation 1 queued (run): parents still needed
    segment(study, 1, 1, 0.5, state=TrialState.FAIL)
    assert pbt.kept(study.get_trials(), 4) == {0, 1, 2, 3, 4}
    for member in (1, 2, 3):
        segment(study, 1, member, 0.5)
    assert pbt.kept(study.get_trials(), 4) == {4, 6, 7, 8}
    segment(study, 2, 0, 0.5, state=TrialState.COMPLETE)
    assert pbt.kept(study.get_trials(), 1) == set()  # the last generation's: none


def test_the_lineage_rows_are_the_finished_segments_with_their_parents_and_donors(study):
    segment(study, 0, 2, 0.5, state=TrialState.RUNNING)  # under way: not drawn yet
    generation_0(study, values=(0.9, 0.8))
    segment(study, 1, 1, 0.7, state=TrialState.COMPLETE, epochs=3,
            **{keys.CONTINUES: [2]})  # fmt: skip
    study.ask()  # running: not drawn
    rows = pbt.lineage_rows(study.get_trials())
    assert [(r["trial"], r["member"], r["generation"], r["parent"]) for r in rows] == [
        (1, 0, 0, None), (2, 1, 0, None), (3, 1, 1, 2),
    ]  # fmt: skip
    assert rows[2]["curve"] == {1: 0.7, 2: 0.7, 3: 0.7} and rows[2]["donor"] is None


@pytest.mark.parametrize(("start_fraction", "rates"), [
    (0.4, (0.6, 0.4)),  # the second phase from epoch 3: its rate 0.5
    (0.6, (0.12, 0.08)),  # from epoch 4, the one after: the first phase's 0.1 still
])  # fmt: skip
def test_explore_perturbs_the_donor_s_settings_of_the_epoch_after_the_interval(
    study, start_fraction, rates
):
    """Generation 0's interval ends at epoch 2; the donor switches to a second phase (learning
    rate 0.5) at epoch 3 or 4: explore starts from the rate of epoch 3, and its cutout's size
    (reading epoch 4 instead, a surviving mutant of 2026-12-06, took the second phase's)."""
    two_phase = config.TrialConfig(
        model="mlp", epochs=5, lr=0.1, weight_decay=1e-4, augment={"cutout": {"size": 8}},
        second_phase=config.SecondPhase(start_fraction=start_fraction, optimizer="sgd", lr=0.5),
    )  # fmt: skip
    plain, nested = config_attrs.split(two_phase)
    attrs = {"config": plain, **{config_attrs.PREFIX + k: v for k, v in nested.items()}}
    for member, value in enumerate((0.9, 0.8, 0.7, 0.6)):
        segment(study, 0, member, value, **attrs)
    members = pbt.finished_members(study.get_trials(), 0)
    [worst] = [s for s in POPULATION.next_generation(members, 0)
               if s.user_attrs[keys.PBT]["donor"] is not None]  # fmt: skip
    [change] = worst.user_attrs[keys.PBT]["changes"]
    assert change["lr"] in tuple(pytest.approx(rate) for rate in rates)
    assert change["augment"]["cutout"]["size"] in (10, 6)


def test_the_next_generation_carries_each_segment_s_changes_and_the_donor_s(study):
    earlier = {"start_fraction": 0.4, "lr": 0.2, "weight_decay": 0.0, "augment": {}}
    for member, value in enumerate((0.9, 0.8, 0.7, 0.6)):
        segment(study, 1, member, value, epochs=4, changes=[earlier])
    members = pbt.finished_members(study.get_trials(), 1)
    planned = {s.user_attrs[keys.PBT]["member"]: s.user_attrs[keys.PBT]["changes"]
               for s in POPULATION.next_generation(members, 1)}  # fmt: skip
    assert [planned[m] for m in (0, 1, 2)] == [[earlier]] * 3
    assert planned[3][0] == earlier and len(planned[3]) == 2  # the donor's, then explore's


def test_explore_perturbs_each_strength_a_spec_sets_and_skips_those_it_leaves_out():
    assert pbt.perturbed({"affine": {"translate": 0.1}}, lambda: 1.2) == {
        "affine": {"translate": pytest.approx(0.12)}
    }
