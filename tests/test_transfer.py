"""--warm-start-from: a study that starts from an earlier one's best configs, fitted to its own
ranges, and searches the box they span. The earlier study is a real one in a real SQLite
file, made by search.run; its trials are written with Optuna's own create_trial, so that the
test knows which values the best of them hold."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from search.tuning.records import ledger
from search.tuning.strategies import transfer

SPACE = ["--space", "test_transfer", "--space-module", "tests.spaces_for_tests"]
SOURCE_RANGES = {  # test_transfer's at --epochs 3
    "sgd_lr": FloatDistribution(1e-3, 0.3, log=True),
    "sgd_momentum": FloatDistribution(0.0, 0.9, step=0.1),
    "width": CategoricalDistribution([4, 16, 64]),
}
# (params, state, value): the best complete one has a rate and a width that a study of 2
# epochs does not offer; a pruned one with a higher value is no config to start from
SOURCE_TRIALS = [
    ({"sgd_lr": 0.25, "sgd_momentum": 0.8, "width": 64}, TrialState.COMPLETE, 0.9),
    ({"sgd_lr": 0.02, "sgd_momentum": 0.3, "width": 16}, TrialState.COMPLETE, 0.8),
    ({"sgd_lr": 0.005, "sgd_momentum": 0.0, "width": 4}, TrialState.COMPLETE, 0.5),
    ({"sgd_lr": 0.001, "sgd_momentum": 0.9, "width": 4}, TrialState.PRUNED, None),
]


def make_source(run_here, folder, storage: str, space=SPACE, fix=()) -> optuna.Study:
    made = run_here("search.run", *space, "--dataset", "sample", "--epochs", "3", *fix,
                    "--study", "source", "--storage", storage, "--create-only", cwd=folder)  # fmt: skip
    assert made.returncode == 0, made.stderr
    source = optuna.load_study(study_name="source", storage=storage)
    for params, state, value in SOURCE_TRIALS:
        intermediate = {} if state == TrialState.COMPLETE else {1: 0.95}
        source.add_trial(optuna.trial.create_trial(
            params=params, distributions=SOURCE_RANGES, value=value, state=state,
            intermediate_values=intermediate,
        ))  # fmt: skip
    return source


def test_values_are_clamped_to_a_range_and_dropped_outside_the_choices():
    rate = FloatDistribution(1e-3, 0.1, log=True)
    assert transfer.fit(0.25, rate) == (0.1, "clamped")
    assert transfer.fit(1e-4, rate) == (1e-3, "clamped")
    assert transfer.fit(0.05, rate) == (0.05, "")
    assert transfer.fit(1e-3, rate) == (1e-3, "") and transfer.fit(0.1, rate) == (0.1, "")
    assert transfer.fit(12, IntDistribution(1, 10)) == (10, "clamped")
    assert transfer.fit(64, CategoricalDistribution([4, 16])) == (None, "dropped")
    assert transfer.fit(16, CategoricalDistribution([4, 16])) == (16, "")


def test_the_box_spans_the_configs_and_a_range_it_misses_stays_whole():
    ranges = {"lr": FloatDistribution(1e-3, 1.0, log=True), "depth": IntDistribution(1, 10),
              "act": CategoricalDistribution(["relu", "gelu", "silu"]),
              "pinned": IntDistribution(0, 5)}  # fmt: skip
    configs = [{"lr": 0.1, "depth": 3, "act": "silu", "pinned": 1},
               {"lr": 0.01, "depth": 5, "act": "relu", "pinned": 1}]  # fmt: skip
    box = transfer.bounding_box(
        configs, ranges, fixed={"pinned": 1}
    )  # choices in the space's order
    assert box == {"lr": {"low": 0.01, "high": 0.1}, "depth": {"low": 3, "high": 5},
                   "act": {"choices": ["relu", "silu"]}}  # fmt: skip
    assert transfer.narrowed(1e-3, 1.0, box["lr"]) == (0.01, 0.1)
    assert transfer.narrowed(1, 2, box["depth"]) == (1, 2)  # no overlap: the range as it was
    assert transfer.narrowed(1, 10, None) == (1, 10)


def test_a_warm_started_study_runs_the_earlier_winners_first_inside_its_ranges(tmp_path, run_here):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make_source(run_here, tmp_path, storage)
    target = [*SPACE, "--dataset", "sample", "--epochs", "2", "--sampler", "random",
              "--pruner", "none", "--storage", storage, "--study", "target",
              "--warm-start-from", "source", "--warm-start-top", "2", "--warm-start-by", "box"]  # fmt: skip
    first = run_here("search.run", *target, "--trials", "6", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    line = next(ln for ln in first.stdout.splitlines() if ln.startswith("warm start from"))
    assert "queued its 2 best config(s) (val_accuracy 0.9000 to 0.8000)" in line
    assert "clamped sgd_lr 0.25 -> 0.1 (in 1 config) to its range" in line
    assert "dropped width=64 (in 1 config): not one of 4, 16" in line
    assert "(3 parameter(s) narrowed; held at one value: width=16)" in line
    found = optuna.load_study(study_name="target", storage=storage)
    box = {"sgd_lr": {"low": 0.02, "high": 0.1}, "sgd_momentum": {"low": 0.3, "high": 0.8},
           "width": {"choices": [16]}}  # fmt: skip
    assert found.user_attrs["search_box"] == box
    assert found.user_attrs["warm_start_from"] == "source"
    trials = found.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 6
    # the winners first, best first, fitted: the first takes a width from the box (16)
    assert [t.user_attrs.get("warm_start_from") for t in trials[:3]] == [
        "source trial 0", "source trial 1", None,
    ]  # fmt: skip
    assert trials[0].params == {"sgd_lr": 0.1, "sgd_momentum": 0.8, "width": 16}
    assert trials[1].params == {"sgd_lr": 0.02, "sgd_momentum": 0.3, "width": 16}
    # the ones the sampler chose, inside the box, with a resume that does not name the source
    again = run_here("search.run", *target[:-4], "--trials", "9", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "warm start from" not in again.stdout  # queued when the study was created, once
    trials = optuna.load_study(study_name="target", storage=storage).trials
    assert len(trials) == 9
    for trial in trials:
        assert 0.02 <= trial.params["sgd_lr"] <= 0.1
        assert 0.3 - 1e-9 <= trial.params["sgd_momentum"] <= 0.8 + 1e-9
        assert trial.params["width"] == 16


def test_the_earlier_study_may_be_in_another_storage(tmp_path, run_here):
    earlier = f"sqlite:///{tmp_path / 'earlier.db'}"
    make_source(run_here, tmp_path, earlier)
    result = run_here("search.run", *SPACE, "--dataset", "sample", "--epochs", "3",
                      "--trials", "1", "--warm-start-from", "source", "--warm-start-storage",
                      earlier, "--study", "target", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = optuna.load_study(study_name="target", storage=f"sqlite:///{tmp_path / 'studies.db'}")
    assert found.trials[0].params == SOURCE_TRIALS[0][0]  # in range at 3 epochs: as it was
    assert found.trials[0].user_attrs["warm_start_from"] == "source trial 0"


@pytest.mark.parametrize(
    ("source_space", "flags", "message"),
    [
        (SPACE, ["--warm-start-from", "nowhere"], "no study named 'nowhere' in this storage"),
        (["--space", "test_two_knobs", "--space-module", "tests.spaces_for_tests"],
         ["--warm-start-from", "source"],
         "--warm-start-from source: that study searched space test_two_knobs, not "
         "test_transfer"),
        (SPACE, ["--warm-start-from", "source", "--warm-start"], "choose one"),
        (SPACE, ["--warm-start-storage", "sqlite:///x.db"], "give --warm-start-from STUDY too"),
        (SPACE, ["--warm-start-from", "source", "--warm-start-top", "1", "--warm-start-by", "box"],
         "--warm-start-top 1 holds every parameter at the one config's value"),
    ],
)  # fmt: skip
def test_a_source_that_cannot_serve_is_one_line_and_no_study(
    tmp_path, run_here, source_space, flags, message
):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make = run_here("search.run", *source_space, "--dataset", "sample", "--epochs", "3",
                    "--study", "source", "--storage", storage, "--create-only", cwd=tmp_path)  # fmt: skip
    assert make.returncode == 0, make.stderr
    result = run_here("search.run", *SPACE, "--dataset", "sample", "--epochs", "2",
                      "--storage", storage, "--study", "target", *flags, cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "target" not in optuna.get_all_study_names(storage)


def test_a_study_without_a_complete_trial_is_no_source(tmp_path, run_here):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    made = run_here("search.run", *SPACE, "--dataset", "sample", "--epochs", "3",
                    "--study", "source", "--storage", storage, "--create-only", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    result = run_here("search.run", *SPACE, "--dataset", "sample", "--epochs", "3", "--storage",
                      storage, "--warm-start-from", "source", cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "search.run: error: --warm-start-from source: that study has no complete trial to "
        "start from"
    )


def test_a_study_resumed_from_another_source_is_refused(tmp_path, run_here):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make_source(run_here, tmp_path, storage)
    cold = [*SPACE, "--dataset", "sample", "--epochs", "3", "--storage", storage, "--study",
            "cold", "--trials", "1"]  # fmt: skip
    assert run_here("search.run", *cold, cwd=tmp_path).returncode == 0
    result = run_here("search.run", *cold, "--warm-start-from", "source", cwd=tmp_path)
    assert result.returncode != 0
    assert "study 'cold' was created without --warm-start-from" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_earlier_study_s_pins_are_not_carried_over(tmp_path, run_here):
    """A source searched with --fix width=16 (issue 44): its width was no search's choice, so
    the target's sampler searches width whole, and the line says why it was left out."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make_source(run_here, tmp_path, storage, fix=["--fix", "width=16"])
    result = run_here("search.run", *SPACE, "--dataset", "sample", "--epochs", "3",
                      "--trials", "4", "--sampler", "random", "--storage", storage,
                      "--study", "target", "--warm-start-from", "source",
                      "--warm-start-top", "2", "--warm-start-by", "box", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("warm start from"))
    assert "left out width: pinned by the --fix of study 'source', not chosen by its search" in line
    assert "held at one value" not in line
    found = optuna.load_study(study_name="target", storage=storage)
    assert set(found.user_attrs["search_box"]) == {"sgd_lr", "sgd_momentum"}
    assert found.trials[0].params["sgd_lr"] == 0.25  # the winner, its own choices kept


def test_one_config_s_box_runs_when_asked_for_by_name(tmp_path, run_here):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make_source(run_here, tmp_path, storage)
    result = run_here("search.run", *SPACE, "--dataset", "sample", "--epochs", "3",
                      "--trials", "2", "--storage", storage, "--study", "target",
                      "--warm-start-from", "source", "--warm-start-top", "1",
                      "--warm-start-by", "box", "--warm-start-single", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "held at one value: sgd_lr=0.25, sgd_momentum=0.8, width=64" in result.stdout
    found = optuna.load_study(study_name="target", storage=storage)
    assert all(t.params == SOURCE_TRIALS[0][0] for t in found.trials)


def test_a_prior_draws_near_the_earlier_winners_without_boxing_the_space(tmp_path, run_here):
    """--warm-start-from, by default with the prior (--warm-start-by prior): the earlier
    study's best configs are queued and recorded as the prior (prior.py draws a share of trials near them); no box, so a trial may go anywhere
    in this study's ranges."""
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    make_source(run_here, tmp_path, storage)
    result = run_here("search.run", *SPACE, "--dataset", "sample", "--epochs", "3",
                      "--trials", "8", "--storage", storage, "--study", "target",
                      "--warm-start-from", "source", "--warm-start-top", "2",
                      "--sampler", "random", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "queued its 2 best config(s)" in result.stdout
    assert "a share of trials is drawn near them or near this study's best" in result.stdout
    found = optuna.load_study(study_name="target", storage=storage)
    assert found.user_attrs["search_box"] == {}
    assert found.user_attrs["warm_start_prior"] == [
        SOURCE_TRIALS[0][0], SOURCE_TRIALS[1][0]
    ]  # fmt: skip
    assert [t.params for t in found.trials[:2]] == [SOURCE_TRIALS[0][0], SOURCE_TRIALS[1][0]]
    widths = {t.params["width"] for t in found.trials}
    runs = ledger.finished(ledger.count_by_state(found.trials))  # a continued one once
    assert runs == 8 and widths - {64, 16}  # outside the two configs' choices


# Fast rules (a mutation tester affords them; the tests above run search.run): what is taken
# and said, the source a real SQLite study made with Optuna's create_trial.
RANGES = {"lr": FloatDistribution(1e-3, 0.1, log=True), "depth": IntDistribution(1, 10),
          "act": CategoricalDistribution(["relu", "gelu"])}  # fmt: skip


def source_study(tmp_path, rows, direction="maximize") -> optuna.Study:
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'src.db'}", study_name="earlier",
                                direction=direction)  # fmt: skip
    wide = {"lr": FloatDistribution(1e-4, 1.0, log=True), "depth": IntDistribution(1, 20),
            "act": CategoricalDistribution(["relu", "gelu", "silu"]), "seed_knob": IntDistribution(0, 9)}  # fmt: skip
    for params, value in rows:
        found.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: wide[k] for k in params}, value=value,
        ))  # fmt: skip
    return found


def test_what_had_to_change_to_fit_is_said_once_a_parameter_with_at_most_three_values():
    earlier = {
        "old": IntDistribution(0, 3),  # first: the params after it are fitted all the same
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "act": CategoricalDistribution(["relu", "silu", "mish"]),
    }
    trials = [optuna.trial.create_trial(
        params=p, distributions={k: earlier[k] for k in p}, value=0.5,
    ) for p in ({"old": 1, "lr": 0.5, "act": "silu"}, {"old": 2, "lr": 0.2, "act": "mish"},
                {"lr": 0.3, "act": "relu"}, {"lr": 0.4, "act": "relu"})]  # fmt: skip
    configs, changes = transfer.fitted_configs(trials, RANGES, fixed={"depth": 4})
    assert configs == [
        {"lr": 0.1, "depth": 4}, {"lr": 0.1, "depth": 4},
        {"lr": 0.1, "act": "relu", "depth": 4}, {"lr": 0.1, "act": "relu", "depth": 4},
    ]  # fmt: skip
    assert changes == [
        "dropped old (in 2 configs): not a parameter of this space",
        "clamped lr 0.5 -> 0.1, 0.2 -> 0.1, 0.3 -> 0.1 (in 4 configs) to its range",
        "dropped act=mish, silu (in 2 configs): not one of relu, gelu",
    ]
    _, one = transfer.fitted_configs(trials[:1], RANGES, fixed={}, pinned={"old": 1})
    assert one == ["clamped lr 0.5 -> 0.1 (in 1 config) to its range",
                   "dropped act=silu (in 1 config): not one of relu, gelu"]  # fmt: skip


def test_each_guide_records_its_part_and_says_so_in_one_line():
    """The prior (the default) records the configs and boxes nothing; the box records the
    box and no prior; each line says which, with no changes to tell."""
    from search.tuning.records.settings import StudySettings

    configs = [(3, {"sgd_lr": 0.02, "width": 16}), (5, {"sgd_lr": 0.05, "width": 64})]
    box = {"sgd_lr": {"low": 0.02, "high": 0.05}, "width": {"choices": [16, 64]}}
    planned = transfer.Transfer("earlier", configs, [0.9, 0.8], box, [])
    wanted = StudySettings(space="test_transfer", dataset="sample", epochs=3)
    as_prior = transfer.born_with(wanted, planned, "prior")
    assert as_prior.warm_start_prior == [c for _, c in configs] and as_prior.search_box == {}
    boxed = transfer.born_with(wanted, planned, "box")
    assert boxed.search_box == box and boxed.warm_start_prior == []
    head = "warm start from study 'earlier': queued its 2 best config(s) (val_accuracy 0.9000 to 0.8000), and "
    assert planned.describe() == head + (
        "a share of trials is drawn near them or near this study's best (PriorBand), the rest "
        "by the sampler over the whole space"
    )  # fmt: skip
    assert (
        planned.describe("box")
        == head + "the sampler searches the box they span (2 parameter(s) narrowed)"
    )


def test_a_plan_takes_the_best_k_by_the_source_s_direction_and_leaves_out_its_pins(tmp_path):
    from search.tuning.records.settings import StudySettings

    rows = [({"lr": 0.05, "depth": 3, "act": "relu", "seed_knob": 1}, 0.7),
            ({"lr": 0.01, "depth": 8, "act": "gelu", "seed_knob": 1}, 0.9),
            ({"lr": 0.002, "depth": 5, "act": "relu", "seed_knob": 1}, 0.8)]  # fmt: skip
    wanted = StudySettings(space="s", dataset="sample", epochs=3, fixed_params={"depth": 6})
    planned = transfer.plan(source_study(tmp_path, rows), wanted, RANGES, top=2,
                            pinned={"seed_knob": 1, "depth": 2, "act": "relu"})  # fmt: skip
    assert planned.configs == [(1, {"lr": 0.01, "depth": 6}), (2, {"lr": 0.002, "depth": 6})]
    assert planned.values == [0.9, 0.8]
    assert planned.box == {"lr": {"low": 0.002, "high": 0.01}}
    assert planned.changes == [  # depth: this study's --fix, not left out of anything
        "left out act, seed_knob: pinned by the --fix of study 'earlier', not chosen by its search"
    ]
    assert planned.describe("box") == (
        "warm start from study 'earlier': queued its 2 best config(s) (val_accuracy 0.9000 to "
        "0.8000), and the sampler searches the box they span (1 parameter(s) narrowed); left "
        "out act, seed_knob: pinned by the --fix of study 'earlier', not chosen by its search"
    )
    three = transfer.Transfer("e", [(0, {}), (1, {}), (2, {})], [0.9, 0.8, 0.7], {}, ["a", "b"])
    assert three.describe("box") == (
        "warm start from study 'e': queued its 3 best config(s) (val_accuracy 0.9000 to "
        "0.7000), and the sampler searches the box they span (0 parameter(s) narrowed); a; b"
    )
    (tmp_path / "low").mkdir()
    lowest = transfer.plan(source_study(tmp_path / "low", rows, "minimize"), wanted, RANGES,
                           top=1)  # fmt: skip
    assert lowest.configs[0][0] == 0 and lowest.values == [0.7]
    assert lowest.collapsed() == ["lr=0.05", "act=relu"]
    assert lowest.describe("box").endswith(
        "(val_accuracy 0.7000), and the sampler searches the box they span (2 parameter(s) "
        "narrowed; held at one value: lr=0.05, act=relu); dropped seed_knob (in 1 config): "
        "not a parameter of this space"
    )


def test_a_source_without_a_complete_trial_is_refused_by_name(tmp_path):
    from registry import UsageError
    from search.tuning.records.settings import StudySettings

    found = source_study(tmp_path, [])
    found.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, params={},
                                              distributions={}))  # fmt: skip
    with pytest.raises(UsageError, match="--warm-start-from earlier: that study has no complete"):
        transfer.plan(found, StudySettings(space="s", dataset="sample", epochs=3), RANGES)
    transfer.check_source("s", "earlier", "s")
    with pytest.raises(UsageError, match="that study searched space t, not s"):
        transfer.check_source("t", "earlier", "s")


def test_the_configs_are_queued_once_each_with_where_they_came_from(tmp_path):
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'target.db'}")
    planned = transfer.Transfer("earlier", [(4, {"lr": 0.01}), (7, {"lr": 0.02})], [0.9, 0.8],
                                {}, [])  # fmt: skip
    assert transfer.enqueue(found, planned) == 2
    assert transfer.enqueue(found, planned) == 0
    queued = found.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["warm_start_from"] for t in queued] == [
        "earlier trial 4", "earlier trial 7",
    ]  # fmt: skip
    assert [t.system_attrs["fixed_params"] for t in queued] == [{"lr": 0.01}, {"lr": 0.02}]


def test_a_boxed_trial_suggests_inside_the_box_and_as_the_space_says_outside_it(tmp_path):
    box = {"lr": {"low": 0.01, "high": 0.02}, "depth": {"low": 4, "high": 4},
           "act": {"choices": ["gelu"]}, "far": {"low": 50, "high": 60}}  # fmt: skip

    def space(trial, context):
        return (trial.suggest_float("lr", 1e-3, 0.1, log=True), trial.suggest_int("depth", 1, 10),
                trial.suggest_categorical("act", ["relu", "gelu"]),
                trial.suggest_categorical("width", [8, 16]), trial.suggest_int("far", 1, 10),
                trial.number)  # fmt: skip

    assert transfer.within_box(space, {}) is space
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'b.db'}",
                                sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    seen = []
    for _ in range(20):
        trial = found.ask()
        seen.append(transfer.within_box(space, box)(trial, None))
        found.tell(trial, 0.5)
    assert all(0.01 <= lr <= 0.02 and depth == 4 and act == "gelu" for lr, depth, act, *_ in seen)
    assert {width for *_, width, _, _ in seen} == {8, 16}
    assert len({far for *_, far, _ in seen}) > 3  # a box that misses the range: not boxed
    assert [s[5] for s in seen] == list(range(20))  # the rest is the trial's
    assert found.trials[0].distributions["lr"] == FloatDistribution(0.01, 0.02, log=True)


def test_a_boxed_trial_suggests_outside_its_box_exactly_as_optuna_does(tmp_path):
    def space(trial, context):
        trial.suggest_float("plain", 0.1, 1.0)
        trial.suggest_float("stepped", 0.0, 0.9, step=0.1)
        trial.suggest_float("logged", 1e-3, 1.0, log=True)
        trial.suggest_int("count", 1, 10)
        trial.suggest_int("every_second", 2, 10, step=2)
        trial.suggest_int("units", 1, 64, log=True)
        return context

    found = [optuna.create_study(storage=f"sqlite:///{tmp_path / f'{n}.db'}") for n in "ab"]
    plain, boxed = found[0].ask(), found[1].ask()
    space(plain, None)
    context = object()
    assert transfer.within_box(space, {"elsewhere": {"low": 0, "high": 1}})(boxed, context) is (
        context
    )
    assert found[1].trials[0].distributions == found[0].trials[0].distributions


@pytest.mark.parametrize(("flags", "message"), [
    ({"warm_start_from": "s", "warm_start_top": 1, "warm_start_by": "box"},
     "--warm-start-top 1 holds every parameter at the one config's value: the sampler would "
     "search nothing; take 2 or more, or add --warm-start-single"),
    ({"warm_start": True, "warm_start_from": "s"},
     "--warm-start and --warm-start-from both queue configs first: choose one (the earlier "
     "study's box may leave out the reports' configs)"),
    ({"warm_start_storage": "sqlite:///x.db"},
     "--warm-start-storage names where --warm-start-from's study is; give --warm-start-from "
     "STUDY too"),
    ({"warm_start_from": "s", "warm_start_top": 0}, "--warm-start-top must be"),
    ({"warm_start_by": "prior"},
     "--warm-start-by prior says how an earlier study's best configs guide the search; name "
     "that study with --warm-start-from STUDY"),
])  # fmt: skip
def test_warm_start_flags_that_cannot_run_are_refused(flags, message):
    from registry import UsageError

    given = {field: getattr(transfer.WarmStartOptions(), field)
             for field in ("warm_start", "warm_start_from", "warm_start_storage",
                           "warm_start_top", "warm_start_single", "warm_start_by")}  # fmt: skip
    with pytest.raises(UsageError) as refused:
        transfer.WarmStartOptions.of({**given, **flags}).check({**given, **flags})
    assert str(refused.value).startswith(message)
    transfer.WarmStartOptions().check(given)  # no warm start: nothing to refuse
    assert transfer.WarmStartOptions(warm_start=True).run_options()["warm_start"] is True
    fine = transfer.WarmStartOptions.of({**given, "warm_start_from": "s", "warm_start_top": 1,
                                         "warm_start_single": True, "warm_start_by": "box"})  # fmt: skip
    fine.check({**given, "warm_start_top": 1})
    assert fine.settings({}) == {"warm_start_from": "s"}
    assert transfer.WarmStartOptions().settings({}) == {"warm_start_from": ""}
    assert fine.run_options() == {"warm_start": False, "warm_start_storage": None,
                                  "warm_start_top": 1, "warm_start_by": "box"}  # fmt: skip
    # not given, the prior (the default since 2026-12-07); a prior of one config still searches
    as_prior = transfer.WarmStartOptions.of({**given, "warm_start_from": "s", "warm_start_top": 1})
    as_prior.check({**given, "warm_start_top": 1})
    assert as_prior.run_options()["warm_start_by"] == "prior" == transfer.DEFAULT_GUIDE
