"""Recorded learning curves of our own spaces: the record section trains configurations of a
space with the real trainer and writes their curves (resumably); the replay reads the table as
a task, a configuration's curve its nearest recorded neighbour's, and a training that diverged
is pruned as the objective prunes it."""

import json
import math

import optuna
import pytest

from registry import UsageError
from search.bench.replay import figures, lcbench, recorded, recording, simulator
from search.bench.replay.section import settings_of
from tests.conftest import run_here_once

RECORD = ["search.bench", "--dataset", "sample", "--device", "cpu", "--sections", "record",
          "--record-epochs", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A table of 3 mlp configurations, 2 epochs each, on the packaged sample."""
    root = tmp_path_factory.mktemp("recorded")
    done = run_here_once(*RECORD, "--record-configs", "3", "--record-to", "mlp", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "mlp"


def test_each_configuration_is_trained_to_its_end_and_written_with_its_settings(table):
    settings, rows = recording.read_table(table)
    assert [row.number for row in rows] == [0, 1, 2]
    for row in rows:
        assert len(row.val_accuracy) == len(row.val_loss) == len(row.seconds) == 2
        assert all(0 <= value <= 1 for value in row.val_accuracy)
        assert all(seconds > 0 for seconds in row.seconds) and not row.diverged
        assert row.params["image_size"] == 0  # --record-fix's default holds
        assert row.params == recording.drawn(settings, row.number)[0]  # drawn by k alone
    assert settings["epochs"] == 2 and settings["fixed_params"] == {"image_size": 0}
    assert {"width", "depth", "dropout", "batch_size"} <= set(settings["ranges"])
    assert settings["train_images"] + settings["val_images"] == 5000


def test_the_same_command_resumes_a_table_and_keeps_what_was_recorded(table, tmp_path):
    copy = tmp_path / "mlp"
    copy.mkdir()
    for name in (recording.SETTINGS, recording.TABLE):
        (copy / name).write_bytes((table / name).read_bytes())
    before = (table / recording.TABLE).read_text()
    done = run_here_once(*RECORD, "--record-configs", "4", "--record-to", "mlp", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    after = (copy / recording.TABLE).read_text()
    assert after.startswith(before) and len(after.splitlines()) == 4
    assert "4 configurations (1 now" in done.stdout


def test_a_recorded_configuration_gets_its_own_curve_at_distance_zero(table):
    task = recorded.Table(table)
    for row in task.rows:
        assert task.curve(row.params).val_accuracy == tuple(row.val_accuracy)
    assert task.distances() == [0.0, 0.0, 0.0]
    finals = sorted(row.val_accuracy[-1] for row in task.rows)
    assert task.reference() == figures.Reference(best=finals[-1], median=finals[1])
    assert task.fidelity()["spread"] > 0


@pytest.mark.parametrize(("finals", "correlated"), [
    ((0.1, 0.2, 0.3, 0.4, 0.5, 0.6), lambda rho: rho > 0.8),  # a neighbour's curve is telling
    ((0.1, 0.9, 0.2, 0.8, 0.3, 0.7), lambda rho: rho < 0),  # a neighbour's curve misleads
])  # fmt: skip
def test_a_table_s_fidelity_is_how_well_a_left_out_configuration_s_neighbour_predicts_it(
    table, tmp_path, finals, correlated
):
    """Six configurations that differ in dropout alone, their last accuracies in dropout's
    order or alternating: each one's nearest other is next to it in dropout."""
    settings, rows = recording.read_table(table)
    made = [
        recording.Recorded(k, {**rows[0].params, "dropout": k / 10}, [0.05, final],
                           [1.0, 1.0], [1.0, 1.0])
        for k, final in enumerate(finals)
    ]  # fmt: skip
    recording.write_table(tmp_path, settings, made)
    fidelity = recorded.Table(tmp_path).fidelity()
    free = [name for name in settings["ranges"] if name not in settings["fixed_params"]]
    assert fidelity["spread"] == pytest.approx(math.sqrt((0.1 / 0.5) ** 2 / len(free)))
    assert correlated(fidelity["loo_spearman"]), fidelity


def test_a_new_configuration_gets_its_nearest_neighbour_s_curve(table):
    task = recorded.Table(table)
    near = dict(task.rows[1].params)
    near["dropout"] = min(0.5, near["dropout"] + 0.01)  # a hair from configuration 1
    assert task.curve(near).val_accuracy == tuple(task.rows[1].val_accuracy)
    assert 0 < task.distances()[-1] < 0.01


def test_the_distance_is_the_root_mean_square_of_each_parameter_s_normalized_difference():
    ranges = {
        "lr": json.loads(optuna.distributions.distribution_to_json(
            optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True))),
        "depth": json.loads(optuna.distributions.distribution_to_json(
            optuna.distributions.IntDistribution(1, 11))),
        "act": json.loads(optuna.distributions.distribution_to_json(
            optuna.distributions.CategoricalDistribution(["relu", "gelu"]))),
        "momentum": json.loads(optuna.distributions.distribution_to_json(
            optuna.distributions.FloatDistribution(0.0, 1.0))),
    }  # fmt: skip
    coordinates = recorded.Coordinates(ranges)
    a = {"lr": 1e-3, "depth": 1, "act": "relu", "momentum": 0.5}
    b = {"lr": 1e-2, "depth": 6, "act": "gelu"}  # another branch: no momentum
    by_hand = math.sqrt(((1 / 3) ** 2 + 0.5**2 + 1**2 + 1**2) / 4)
    found = coordinates.distances(coordinates.of([a]), b)
    assert found[0] == pytest.approx(by_hand)
    assert coordinates.distances(coordinates.of([b]), b)[0] == 0.0  # absent in both: equal


def test_the_replay_section_reads_a_recorded_table_and_says_how_near_its_curves_were(
    table, tmp_path
):
    out = tmp_path / "replay.json"
    done = run_here_once(
        "search.bench", "--sections", "replay", "--benchmark", f"recorded:{table}",
        "--replay-seeds", "2", "--replay-budget", "3", "--replay-workers", "2",
        "--strategies", "random,default", "--json", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [row["figures"] for row in json.loads(out.read_text())["sections"]["replay"]["rows"]]
    assert [row["strategy"] for row in rows] == ["random", "default"]
    for row in rows:
        assert row["runs"] == 2
        distance = row["neighbour_distance"]
        assert 0 < distance["median"] <= distance["p90"] <= 1 and distance["looked_up"] >= 2
    assert f"recorded:{table}, 1 task(s), 2 seed(s), budget 3 full trials (6 epochs)" in (
        done.stdout
    )


def test_a_table_with_an_epoch_missing_is_refused(table, tmp_path):
    settings, rows = recording.read_table(table)
    rows[1].val_accuracy.pop()
    rows[1].val_loss.pop()
    recording.write_table(tmp_path, settings, rows)
    with pytest.raises(UsageError, match="configuration 1 has 1 of 2 epochs and 2 epoch times"):
        recorded.Table(tmp_path)


def test_a_training_that_diverged_is_pruned_unreported_after_the_epoch_it_diverged_in():
    task = lcbench.Surrogate("3945")
    diverging = simulator.Curve(val_accuracy=(0.4,), seconds=(1.0, 2.0))  # NaN in epoch 2
    settings = settings_of("random", task, 0, 6)
    search = simulator.replay(settings, task.suggest, lambda params: diverging, 1, "d")
    trials = search.study.trials
    assert [t.state.name for t in trials] == ["PRUNED"] * 3
    assert all(t.user_attrs["prune_reason"] == "the training loss became nan in epoch 2"
               and t.intermediate_values == {1: 0.4} for t in trials)  # fmt: skip
    assert search.epochs == 6 and search.seconds == pytest.approx(9.0)
    assert search.completions == []
