"""The strategy interface's own rules, on real SQLite studies whose trials are made with
Optuna's add_trial and ask: what a worker may do next (exactly N: DONE, WAIT or START), whether
the study has room, which new trial is surplus, what an epoch's result decides and how a trial
stopped early ends, which paused checkpoints are kept. The fleet tests (test_worker,
test_scale) exercise the same rules through worker processes, minutes a run; these take
milliseconds, so that a mutation tester can afford them (TESTING.md)."""

import logging

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.pruners import ThresholdPruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from search.tuning.records import keys
from search.tuning.store import storage
from search.tuning.strategies import continuation
from search.tuning.strategies.scheduler import Decision, Next, NotNeeded, Scheduler

LR = {"lr": FloatDistribution(1e-3, 0.1, log=True)}


@pytest.fixture
def study(tmp_path):
    return new_study(tmp_path)


class Said(logging.Handler):
    """The worker's log lines, as said."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def worker_log():
    """What the worker logs, read from its own logger: an earlier command run in this process
    (search.cli's configure_logging) stops "search" from passing records up to pytest's."""
    logger, said = logging.getLogger("search.worker"), Said()
    level = logger.level
    logger.addHandler(said)
    logger.setLevel(logging.INFO)
    yield said
    logger.removeHandler(said)
    logger.setLevel(level)


def new_study(tmp_path, pruner=None) -> optuna.Study:
    opened = storage.open_storage(f"sqlite:///{tmp_path / 's.db'}")
    return optuna.create_study(storage=opened, direction="maximize", pruner=pruner,
                               sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip


def add(study, state, epochs=1, value=0.5, user_attrs=None, system_attrs=None):
    """A trial in `state` that reported `epochs` epochs at `value`."""
    study.add_trial(optuna.trial.create_trial(
        state=state, params={"lr": 0.01}, distributions=LR,
        value=value if state == TrialState.COMPLETE else None,
        intermediate_values={e: value for e in range(1, epochs + 1)},
        user_attrs=user_attrs or {}, system_attrs=system_attrs or {},
    ))  # fmt: skip
    return study.trials[-1]


def running(study):
    """A trial under way, as a worker's ask starts one."""
    return study.ask()


@pytest.mark.parametrize(("finished", "expected"), [
    ((TrialState.COMPLETE, TrialState.COMPLETE), Next.START),
    ((TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL), Next.START),  # a failure: not N
    ((TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED), Next.DONE),
    ((TrialState.COMPLETE,) * 4, Next.DONE),
])  # fmt: skip
def test_the_study_is_done_at_n_finished_trials_complete_or_pruned(study, finished, expected):
    for state in finished:
        add(study, state)
    assert Scheduler(target=3).next(study) is expected


@pytest.mark.parametrize(("epochs", "expected"), [((3, 1), Next.START), ((3, 2), Next.DONE)])
def test_the_study_is_done_when_its_epoch_budget_is_trained(study, epochs, expected):
    for count in epochs:
        add(study, TrialState.PRUNED, epochs=count)
    assert Scheduler(target=100, epoch_budget=5).next(study) is expected


def test_a_re_run_s_resumed_epochs_are_not_charged_twice(study):
    add(study, TrialState.FAIL, epochs=2)
    add(study, TrialState.COMPLETE, epochs=3, user_attrs={keys.RESUMED_AFTER_EPOCH: 2})
    assert Scheduler(target=100, epoch_budget=4).next(study) is Next.START  # 2 + 1 trained
    assert Scheduler(target=100, epoch_budget=3).next(study) is Next.DONE


def test_a_worker_waits_while_running_trials_may_yet_reach_n(study):
    add(study, TrialState.COMPLETE)
    running(study)
    scheduler = Scheduler(target=2)
    assert scheduler.next(study) is Next.WAIT  # the running one may fail and need its re-run
    assert Scheduler(target=3).next(study) is Next.START
    study.enqueue_trial({"lr": 0.02})  # a re-run queued: taken, and the claim decides
    assert scheduler.next(study) is Next.START
    assert study.trials[-1].state == TrialState.WAITING  # not dropped: the study is not done


def test_done_drops_what_is_still_queued_and_nothing_else(study, worker_log):
    add(study, TrialState.COMPLETE)
    under_way = running(study)
    study.enqueue_trial({"lr": 0.02})
    add(study, TrialState.COMPLETE)
    assert Scheduler(target=2).next(study) is Next.DONE
    queued = study.trials[2]
    assert queued.state == TrialState.FAIL and queued.user_attrs[keys.NOT_NEEDED] is True
    assert study.trials[under_way.number].state == TrialState.RUNNING
    assert worker_log.messages == [
        "trial 2: queued, and not needed: not needed: the study holds what it is run for"
    ]


@pytest.mark.parametrize(("target", "budget", "expected"), [
    (3, 0, True), (2, 0, False), (3, 3, False), (3, 4, True),
])  # fmt: skip
def test_room_is_fewer_than_n_finished_or_running_and_epochs_left(study, target, budget, expected):
    add(study, TrialState.PRUNED, epochs=2)
    running(study).report(0.5, 1)
    assert Scheduler(target=target, epoch_budget=budget).has_room(study) is expected


def test_a_trial_numbered_after_n_others_under_way_queued_or_finished_is_surplus(study):
    add(study, TrialState.COMPLETE)
    add(study, TrialState.FAIL)  # a failure: its re-run counts instead
    running(study)
    study.enqueue_trial({"lr": 0.02})  # queued: always run (ask pops it first), so counted
    add(study, TrialState.RUNNING)
    trials = study.get_trials(deepcopy=False)
    queued, late = trials[3], trials[4]
    assert Scheduler(target=3).claim(queued, trials) is None  # 0 and 2 before it
    assert Scheduler(target=2).claim(queued, trials) == (
        "not needed: 2 earlier trials had finished or were under way"
    )
    assert Scheduler(target=3).claim(late, trials) is not None  # 0, 2 and 3 before it
    assert Scheduler(target=4).claim(late, trials) is None


def test_a_paused_trial_taken_over_is_counted_once_as_its_continuation(study):
    add(study, TrialState.PRUNED, user_attrs={keys.PAUSED: 1})
    add(study, TrialState.COMPLETE, user_attrs={keys.CONTINUES: [0]})
    late = running(study)
    trials = study.get_trials(deepcopy=False)
    assert Scheduler(target=2).claim(late, trials) is None  # trial 1 alone before it
    assert Scheduler(target=1).claim(late, trials) is not None


@pytest.mark.parametrize(("pause", "value", "expected"), [
    (False, 0.9, Decision.CONTINUE), (False, 0.1, Decision.STOP), (True, 0.1, Decision.PAUSE),
])  # fmt: skip
def test_an_epoch_is_reported_at_its_number_and_judged_by_the_pruner(
    tmp_path, pause, value, expected
):
    study = new_study(tmp_path, pruner=ThresholdPruner(lower=0.5))
    trial = running(study)
    assert Scheduler(target=5, pause=pause).on_epoch(trial, [0.8, 0.7, value]) is expected
    assert study.trials[0].intermediate_values == {3: value}


def test_a_paused_trial_keeps_its_epoch_and_a_pruned_one_does_not(study):
    scheduler = Scheduler(target=5, pause=True)
    paused, pruned = running(study), running(study)
    assert scheduler.ended(paused, Decision.PAUSE, [0.3, 0.41236]) == (
        "paused after epoch 2 at val_accuracy 0.4124"
    )
    assert (
        scheduler.ended(pruned, Decision.STOP, [0.2])
        == "pruned after epoch 1 at val_accuracy 0.2000"
    )
    assert study.trials[0].user_attrs == {keys.PAUSED: 2}
    assert study.trials[1].user_attrs == {}


def test_a_resumed_trial_reports_the_epochs_it_resumes_after_again(study):
    trial = running(study)
    Scheduler(target=5).resumed(trial, [0.1, 0.2, 0.3])
    assert study.trials[0].intermediate_values == {1: 0.1, 2: 0.2, 3: 0.3}


def test_a_fresh_trial_trains_what_its_space_made_and_a_second_continuation_does_not(study):
    add(study, TrialState.PRUNED, user_attrs={keys.PAUSED: 1})
    scheduler = Scheduler(target=5, pause=True)
    assert scheduler.start(running(study), "config") == "config"
    for _ in range(2):
        study.enqueue_trial({"lr": 0.01}, user_attrs={keys.CONTINUES: [0]})
    first, second = running(study), running(study)
    assert scheduler.start(first, "config") == "config"
    assert first.user_attrs[keys.CONTINUED_FROM] == 0
    with pytest.raises(NotNeeded, match="not needed: trial 2 already continues trial 0"):
        scheduler.start(second, "config")


def rung_value(value: float) -> dict:
    return {f"{continuation.RUNG}0": value}


def test_the_kept_checkpoints_are_the_most_promising_paused_trials(study):
    for value in (0.2, 0.6, 0.4, 0.9):
        add(study, TrialState.PRUNED, value=value, user_attrs={keys.PAUSED: 1},
            system_attrs=rung_value(value))  # fmt: skip
    add(
        study,
        TrialState.PRUNED,
        value=0.1,
        user_attrs={keys.PAUSED: 1},
        system_attrs={**rung_value(0.1), f"{continuation.RUNG}1": 0.1},
    )  # a rung higher
    add(study, TrialState.COMPLETE, user_attrs={keys.CONTINUES: [3]})  # 0.9 taken over
    add(study, TrialState.PRUNED, value=0.95, user_attrs={keys.PAUSED: 1})  # at no rung: last
    trials = study.get_trials(deepcopy=False)
    assert Scheduler(5, keep_paused=4).keeps(trials, StudyDirection.MAXIMIZE) == {4, 1, 2, 0}
    assert Scheduler(5, keep_paused=2).keeps(trials, StudyDirection.MAXIMIZE) == {4, 1}
    assert Scheduler(5, keep_paused=2).keeps(trials, StudyDirection.MINIMIZE) == {4, 0}
    assert Scheduler(5, keep_paused=0).keeps(trials, StudyDirection.MAXIMIZE) == set()


def promoting_study(tmp_path) -> optuna.Study:
    """Trial 0 paused at rung 0 with 0.5 beside three weaker trials: successive halving at
    eta 2 now ranks it in its rung's top half."""
    found = new_study(
        tmp_path, continuation.PausingSuccessiveHalving(min_resource=1, reduction_factor=2)
    )
    add(found, TrialState.PRUNED, value=0.5, user_attrs={keys.PAUSED: 1},
        system_attrs=rung_value(0.5))  # fmt: skip
    for value in (0.1, 0.2, 0.3):
        add(found, TrialState.PRUNED, value=value, system_attrs=rung_value(value))
    return found


@pytest.mark.parametrize(("scheduler", "queued"), [
    (Scheduler(target=10, pause=True, resumable=lambda n: True), True),
    (Scheduler(target=10, pause=False, resumable=lambda n: True), False),
    (Scheduler(target=10, pause=True, resumable=lambda n: False), False),  # no checkpoint
    (Scheduler(target=5, pause=True, resumable=lambda n: True), False),  # no room: 4 + 1 running
])  # fmt: skip
def test_a_promoted_paused_trial_is_queued_to_continue_when_it_can_and_there_is_room(
    tmp_path, scheduler, queued, worker_log
):
    found = promoting_study(tmp_path)
    running(found)
    expected = Next.START if queued or scheduler.target > 5 else Next.WAIT
    assert scheduler.next(found) is expected
    waiting = found.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs.get(keys.CONTINUES) for t in waiting] == ([[0]] if queued else [])
    promoted = ["trial 0: its rung promotes it; queued to continue"]
    assert [m for m in worker_log.messages if "promotes" in m] == (promoted if queued else [])


@pytest.mark.parametrize(("scheduler", "extra", "queued"), [
    (Scheduler(target=3, pause=True, resumable=lambda n: True), None, [1]),  # the best paused
    (Scheduler(target=3, pause=True, resumable=lambda n: n != 1), None, [2]),  # 1's was removed
    (Scheduler(target=3, pause=True, resumable=lambda n: True), TrialState.COMPLETE, None),
    (Scheduler(target=3, pause=True, resumable=lambda n: True), TrialState.RUNNING, None),
    (Scheduler(target=3, pause=True, resumable=lambda n: True, epoch_budget=3), None, None),
    (Scheduler(target=3, pause=False, resumable=lambda n: True), None, None),
])  # fmt: skip
def test_a_study_that_ends_with_every_trial_paused_continues_its_most_promising_one(
    study, scheduler, extra, queued, worker_log
):
    """A pruner that holds a rung's first trials can leave a small study with nothing
    finished: at its end, its best paused trial that can resume is continued (taking its place
    in --trials) so that the study has a result; not where a trial finished or still runs,
    where the epoch budget is spent, or without pausing."""
    for value in (0.2, 0.9, 0.6):
        add(study, TrialState.PRUNED, value=value, user_attrs={keys.PAUSED: 1},
            system_attrs=rung_value(value))  # fmt: skip
    if extra == TrialState.RUNNING:
        running(study)
    elif extra is not None:
        add(study, extra)
    assert scheduler.next(study) is (Next.START if queued else Next.DONE)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs.get(keys.CONTINUES) for t in waiting] == ([queued] if queued else [])
    said = [m for m in worker_log.messages if "every trial paused" in m]
    assert said == ([f"trial {queued[0]}: every trial paused; continued to end the study with a "
                     "result"] if queued else [])  # fmt: skip
