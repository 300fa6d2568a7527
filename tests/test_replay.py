"""The replay section (search/bench/replay/): LCBench's surrogate curves, the simulated clock
with asynchronous workers driving the product's own strategies, and the figures read of them."""

import dataclasses
import json

import optuna
import pytest

from registry import UsageError
from search.bench.replay import figures, lcbench, section, simulator
from search.bench.replay.section import settings_of
from search.tuning.records import keys

TASK = "3945"


@pytest.fixture(scope="module")
def surrogate():
    return lcbench.Surrogate(TASK)


def replayed(strategy, surrogate, workers=1, budget_trials=3, seed=0):
    settings = settings_of(strategy, surrogate, seed, budget_trials * lcbench.EPOCHS)
    return simulator.replay(settings, surrogate.suggest, surrogate.curve, workers,
                            f"{strategy}-{TASK}-{seed}")  # fmt: skip


def test_a_warm_start_queues_another_task_s_best_and_searches_their_box_or_prior(surrogate):
    """default-box and default-prior on task 3945 start from the default's search of task
    7593 (the earlier study): its 5 best complete trials run first, in order; the box holds
    every later trial inside their span, the prior records them and boxes nothing."""
    other = lcbench.Surrogate("7593")
    source = simulator.replay(settings_of("default", other, 100, 10 * lcbench.EPOCHS),
                              other.suggest, other.curve, 2, "default-7593-100").study  # fmt: skip
    best = sorted((t for t in source.trials if t.state.name == "COMPLETE"),
                  key=lambda t: t.value, reverse=True)[:5]  # fmt: skip
    assert len(best) == 5
    for strategy in ("default-box", "default-prior"):
        settings, queued = section.planned(strategy, surrogate, 0, 4 * lcbench.EPOCHS, source)
        assert settings.warm_start_from == "default-7593-100"
        search = simulator.replay(settings, surrogate.suggest, surrogate.curve, 2, strategy,
                                  queued=queued)  # fmt: skip
        assert [t.params for t in search.study.trials[:5]] == [t.params for t in best]
        assert [t.user_attrs["warm_start_from"] for t in search.study.trials[:5]] == [
            f"default-7593-100 trial {t.number}" for t in best
        ]  # fmt: skip
        later = search.study.trials[5:]
        assert len(later) > 5
        if strategy == "default-box":
            box = settings.search_box
            assert settings.warm_start_prior == [] and set(box) == set(best[0].params)
            assert all(box[name]["low"] <= value <= box[name]["high"]
                       for t in later for name, value in t.params.items())  # fmt: skip
        else:
            assert settings.search_box == {}
            assert settings.warm_start_prior == [t.params for t in best]


def test_a_warm_start_needs_another_task_to_start_from(surrogate):
    with pytest.raises(UsageError, match="'default-prior' starts from a search of another task"):
        section.check_strategies(("default", "default-prior"), (surrogate,))
    section.check_strategies(("default", "default-prior"), (surrogate, lcbench.Surrogate("7593")))
    assert section.source_of(surrogate, (surrogate, "b", "c")) == "c"  # the last, for the first


def test_a_curve_is_fifty_epochs_of_accuracy_and_seconds_the_same_each_call(surrogate):
    params = {"batch_size": 91, "learning_rate": 3e-3, "momentum": 0.5, "weight_decay": 1e-3,
              "num_layers": 2, "max_units": 256, "max_dropout": 0.3}  # fmt: skip
    curve = surrogate.curve(params)
    assert len(curve.val_accuracy) == len(curve.seconds) == lcbench.EPOCHS == 50
    assert all(0 < value <= 1 for value in curve.val_accuracy)
    assert all(seconds > 0 for seconds in curve.seconds)
    assert lcbench.Surrogate(TASK).curves([params])[0] == curve  # deterministic, and cached
    assert len(lcbench.tasks()) == 34 and set(lcbench.DEVELOPMENT_TASKS) <= set(lcbench.tasks())


def test_an_unknown_task_is_one_line():
    with pytest.raises(UsageError, match="LCBench has no task '1'"):
        lcbench.Surrogate("1")


def test_one_worker_runs_trials_one_after_another_on_the_simulated_clock(surrogate):
    """Random search to the end: each trial's epochs, one after another, are the clock."""
    search = replayed("random", surrogate)
    trials = search.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    curves = [surrogate.curve(t.params) for t in trials]
    assert search.seconds == pytest.approx(sum(sum(c.seconds) for c in curves))
    assert search.epochs == 3 * lcbench.EPOCHS
    assert [c.value for c in search.completions] == [c.val_accuracy[-1] for c in curves]
    assert search.best_by(2 * lcbench.EPOCHS) == max(c.val_accuracy[-1] for c in curves[:2])


def test_workers_overlap_and_asha_stops_trials_by_the_product_s_pruner(surrogate):
    alone, four = replayed("asha", surrogate), replayed("asha", surrogate, workers=4)
    assert four.seconds < alone.seconds  # the same budget of epochs, four at a time
    pruned = [t for t in four.study.trials if t.state.name == "PRUNED"]
    assert pruned and all(t.user_attrs["prune_reason"].startswith("pruned after epoch")
                          for t in pruned)  # fmt: skip
    assert any("completed_rung_0" in t.system_attrs for t in pruned)  # Optuna's own ASHA


def test_a_paused_trial_is_continued_from_where_it_paused(surrogate):
    search = replayed("tpe-hyperband-pause", surrogate, workers=4, budget_trials=12)
    continued = [t for t in search.study.trials if "continued_from" in t.user_attrs]
    assert continued
    for trial in continued:
        parent = search.study.trials[trial.user_attrs["continued_from"]]
        assert trial.user_attrs["resumed_after_epoch"] == parent.user_attrs["paused_after_epoch"]
        epochs = sorted(trial.intermediate_values)
        assert epochs[0] == 1  # its curve is the whole run, the paused part reported again


def test_a_paused_trial_whose_checkpoint_a_live_search_would_remove_is_not_continued(surrogate):
    """As a live worker removes the checkpoints of all but the --keep-paused most promising
    paused trials, the replay continues none of the others (it had assumed every curve kept,
    flattering the pausing strategies)."""
    settings = settings_of("tpe-hyperband-pause", surrogate, 0, 12 * lcbench.EPOCHS)

    def search(keep_paused):
        simulation = simulator.Simulation(dataclasses.replace(settings, keep_paused=keep_paused),
                                          surrogate.suggest, surrogate.curve, "paused")  # fmt: skip
        idle = list(range(4))
        while simulation.trained < settings.epoch_budget:  # as simulator.replay drives it
            idle = [worker for worker in idle if not simulation.start(worker)]
            idle.append(simulation.step())
        trials = simulation.study.get_trials()
        return simulation.removed, [t.user_attrs[keys.CONTINUES][-1] for t in trials
                                    if keys.CONTINUED_FROM in t.user_attrs]  # fmt: skip

    removed, parents = search(keep_paused=1000)
    assert parents and not removed
    removed, parents = search(keep_paused=0)  # every paused trial's checkpoint removed
    assert removed and not parents
    # with room for one, the more promising of two paused trials keeps its checkpoint
    kept = simulator.Simulation(dataclasses.replace(settings, keep_paused=1), surrogate.suggest,
                                surrogate.curve, "one kept")  # fmt: skip
    for value in (0.7, 0.9):
        kept.study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED, intermediate_values={1: value},
            user_attrs={keys.PAUSED: 1}, system_attrs={"completed_rung_0": value},
        ))  # fmt: skip
    kept.remove_checkpoints()
    assert kept.removed == {0}


def test_strategies_that_need_more_than_curves_are_refused(surrogate):
    with pytest.raises(UsageError, match="'pbt' cannot be replayed"):
        settings_of("pbt", surrogate, 0, 100)


def test_the_figures_of_three_strategies_rank_and_pair_them():
    scale = figures.Reference(best=0.9, median=0.5)

    def run(strategy, seed, values, improvements):
        best = dict(zip(figures.FRACTIONS, values, strict=True))
        regret = {f: scale.regret(v) for f, v in best.items()}
        return figures.Run(strategy, "t", seed, best, 1, regret, improvements)

    runs = [run("random", s, (0.5, 0.6, 0.7), ((30, 0.7),)) for s in range(6)]
    runs += [run("default", s, (0.6, 0.8, 0.9), ((10, 0.7), (20, 0.9))) for s in range(6)]
    runs += [run("asha", s, (None, 0.7, 0.8), ((25, 0.8),)) for s in range(6)]
    rows = {row["strategy"]: row for row in figures.summary(runs, "default")}
    assert rows["default"]["regret"]["1.0"] == pytest.approx(0.0)
    assert rows["asha"]["regret"]["0.25"] == 1.0  # nothing complete yet: the median
    assert rows["random"]["regret"]["0.5"] == pytest.approx(0.75)
    assert [rows[s]["mean_rank"] for s in ("default", "asha", "random")] == [1, 2, 3]
    assert rows["random"]["p_vs_default"]["1.0"] < 0.05  # six of six worse, paired
    assert rows["default"]["epochs_to_random_best"] == {"median": 10, "reached": 6}
    assert rows["asha"]["epochs_to_random_best"] == {"median": 25, "reached": 6}
    # every pair, not only against the default: the same test, scipy's own p
    from scipy import stats

    asha, random = [0.25] * 6, [0.5] * 6  # regrets at the budget's end: 0.8 and 0.7 found
    assert rows["random"]["p_vs"]["asha"]["1.0"] == stats.wilcoxon(random, asha).pvalue
    assert rows["asha"]["p_vs"]["default"] == {
        "0.25": rows["asha"]["p_vs"]["default"]["0.25"], **rows["asha"]["p_vs_default"]
    }  # fmt: skip
    assert set(rows["default"]["p_vs"]) == {"random", "asha"}


def test_the_picture_draws_each_strategy_s_mean_regret_by_epochs_spent_with_its_band():
    from search.bench.replay import picture

    scale = figures.Reference(best=0.9, median=0.5)
    runs = [figures.Run("random", "t", 0, {}, 30, {}, ((30, 0.7),)),
            figures.Run("random", "t", 1, {}, 10, {}, ((10, 0.5), (20, 0.9)))]  # fmt: skip
    epochs, means, errors = picture.regret_lines(runs, {"t": scale}, 40)["random"]
    assert epochs == list(range(41))
    by = dict(zip(epochs, zip(means, errors, strict=True), strict=True))
    assert by[9] == (1.0, 0.0)  # nothing complete: both at the median
    assert by[10][0] == pytest.approx(1.0) and by[20][0] == pytest.approx(0.5)  # (1 + 0) / 2
    assert by[30][0] == pytest.approx(0.25) and by[30][1] == pytest.approx(0.25)  # (0.5, 0)


def test_the_section_writes_a_row_a_strategy_in_the_json(tmp_path, run_here):
    out = tmp_path / "replay.json"
    result = run_here(
        "search.bench", "--sections", "replay", "--benchmark", "lcbench", "--tasks", TASK,
        "--replay-seeds", "2", "--replay-budget", "3", "--replay-workers", "2",
        "--strategies", "random,asha,default", "--json", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [row["figures"] for row in json.loads(out.read_text())["sections"]["replay"]["rows"]]
    assert [row["strategy"] for row in rows] == ["random", "asha", "default"]
    assert all(row["runs"] == 2 for row in rows)
    assert sum(row["mean_rank"] for row in rows) == pytest.approx(1 + 2 + 3)
    assert set(rows[1]["p_vs_default"]) == {"0.5", "1.0"} and "p_vs_default" not in rows[2]
    assert rows[0]["epochs_to_random_best"]["reached"] == 2  # random reaches its own best
    assert "| replay: asha |" in result.stdout
    page = (tmp_path / "replay.html").read_text()  # beside the JSON, as the picture
    assert all(f'"name":"{name}"' in page for name in ("random", "asha", "default"))
    assert "<script src=" not in page  # plotly.js inline: it opens with no network
    assert (tmp_path / "replay.png").read_bytes().startswith(b"\x89PNG")


def curve_trainer(surrogate):
    """The trainer's stand-in for search.run: the configuration test_lcbench chose last (one
    worker, in this process) reports its surrogate curve epoch by epoch to the objective's
    on_epoch, stopping where that says, as trainer.train does; it checkpoints every epoch (the
    epoch and the history: all a curve's run holds) and resumes after the checkpoint's epoch,
    so that a paused trial can be continued."""
    import torch

    from search.training.trainer import EpochResult, TrainResult
    from tests.spaces_for_tests import LCBENCH_CHOSEN

    def train(trial_config, train_set, eval_set, num_classes, on_device, on_epoch,
              resume_from=None, on_checkpoint=None, **ignored):  # fmt: skip
        curve = surrogate.curve(LCBENCH_CHOSEN[-1])
        history = [EpochResult(**epoch) for epoch in resume_from["history"]] if resume_from else []
        stopped = False
        for epoch in range(len(history) + 1, trial_config.epochs + 1):
            history.append(
                EpochResult(
                    epoch=epoch,
                    train_loss=1.0,
                    lr=0.0,
                    val_accuracy=float(curve.val_accuracy[epoch - 1]),
                    val_loss=1.0,
                    train_seconds=float(curve.seconds[epoch - 1]),
                )
            )
            if on_checkpoint is not None:
                on_checkpoint({"config": trial_config.to_dict(), "epoch": epoch,
                               "history": [dataclasses.asdict(h) for h in history]})  # fmt: skip
            if on_epoch(history[-1]):
                stopped = True
                break
        return TrainResult(torch.nn.Linear(1, 1), history, {}, None, 2, 1, stopped)

    return train


def decisions(study) -> list[tuple]:
    """Each trial's configuration, ending, reported curve and reason."""
    return [(t.number, t.state.name, t.params, sorted(t.intermediate_values.items()),
             t.user_attrs.get("prune_reason")) for t in study.get_trials()]  # fmt: skip


@pytest.mark.parametrize("strategy", ["asha", "tpe-hyperband", "default", "mftpe-sha3-pause"])
def test_the_replay_and_a_search_run_over_the_same_curves_decide_alike(
    strategy, surrogate, tmp_path, monkeypatch
):
    """One seed, one worker, the same study name (Hyperband's brackets hash it): the replay and
    search.run, its trainer reading the curves, propose the same configurations, stop the same
    trials after the same epochs for the same reasons, and end at the same trial."""
    from search import run
    from search.bench.strategies import STRATEGIES
    from search.tuning.execution import objective

    budget = 6 * lcbench.EPOCHS
    name = f"{strategy}-{TASK}-0"
    replay = simulator.replay(settings_of(strategy, surrogate, 0, budget), surrogate.suggest,
                              surrogate.curve, 1, name)  # fmt: skip
    monkeypatch.setattr(objective, "train", curve_trainer(surrogate))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    assert run.main([
        "--space", "test_lcbench", "--space-module", "tests.spaces_for_tests", "--dataset",
        "sample", "--epochs", str(lcbench.EPOCHS), "--trials", "100000", "--epoch-budget",
        str(budget), "--seed", "0", *STRATEGIES[strategy], "--storage", storage, "--study", name,
        "--checkpoint-dir", str(tmp_path / "checkpoints"), "--quiet",
    ]) == 0  # fmt: skip
    live = optuna.load_study(study_name=name, storage=storage)
    assert decisions(live) == decisions(replay.study)
    assert len(live.trials) > 5 and any(t.state.name == "PRUNED" for t in live.trials)
    if strategy in ("default", "mftpe-sha3-pause"):  # paused trials continued, live and replayed
        assert any(keys.CONTINUES in t.user_attrs for t in live.trials)
