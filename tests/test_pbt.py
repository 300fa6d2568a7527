"""--scheduler pbt: a population trained in intervals, its worst quarter copying its best
quarter's weights and hyperparameters, perturbed; real search.run processes, real SQLite,
real checkpoints."""

import optuna
import pytest
import torch
from optuna.trial import TrialState

import spaces
from search.training import config, trainer
from search.tuning.execution.checkpoints import TrialCheckpoints
from search.tuning.records import config_attrs
from search.tuning.strategies import pbt
from tests.conftest import run_command

TINY = ["--space", "test_tiny", "--space-module", "tests.spaces_for_tests", "--dataset", "sample"]
POPULATION = pbt.Population(size=4, interval=1, epochs=2, seed=0)


def segments(study: optuna.Study) -> dict[tuple[int, int], optuna.trial.FrozenTrial]:
    """(generation, member) -> its finished segment; every one once."""
    found = {}
    for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        key = (trial.user_attrs["pbt"]["generation"], trial.user_attrs["pbt"]["member"])
        assert key not in found, f"member {key[1]} ran twice in generation {key[0]}"
        found[key] = trial
    return found


def test_a_population_copies_its_best_quarter_into_its_worst_every_interval(tmp_path):
    """4 members, 3 epochs, an exploit after each: 12 segments on 2 workers, each member once
    a generation; the worst of each generation goes on from the best's checkpoint (its curve
    is the donor's up to there) with the donor's rate and decay times 0.8 or 1.2, the others
    from their own, unchanged; the study trained exactly 4 members' 3 epochs."""
    storage = f"sqlite:///{tmp_path / 'pbt.db'}"
    result = run_command("search.run", *TINY, "--epochs", "3", "--scheduler", "pbt",
                      "--population", "4", "--pbt-interval", "1", "--workers-per-gpu", "2",
                      "--storage", storage, "--study", "pbt", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="pbt", storage=storage)
    assert study.user_attrs["trials"] == 12 and study.user_attrs["pruner"] == "none"
    found = segments(study)
    assert sorted(found) == [(g, m) for g in range(3) for m in sorted({k[1] for k in found})]
    members = sorted({member for _, member in found})
    assert len(members) == 4
    assert [t.state for (g, _), t in sorted(found.items()) if g == 2] == [TrialState.COMPLETE] * 4
    for generation in (1, 2):
        before = {m: found[(generation - 1, m)] for m in members}
        ranked = sorted(
            before.values(), key=lambda t: (-t.intermediate_values[generation], t.number)
        )
        worst, best = ranked[-1], ranked[0]
        for member in members:
            segment = found[(generation, member)]
            attrs = segment.user_attrs["pbt"]
            parent = study.trials[segment.user_attrs[spaces.CONTINUES][-1]]
            curve = dict(segment.intermediate_values)
            assert {e: curve[e] for e in range(1, generation + 1)} == dict(
                parent.intermediate_values
            )  # its curve goes on from its parent's
            if before[member] is worst:  # exploited: the best's, perturbed
                assert parent is not None and parent.number == best.number
                assert attrs["donor"] == best.user_attrs["pbt"]["member"]
                donor_config = config.from_dict(config_attrs.stored(best))
                own_config = config.from_dict(config_attrs.stored(segment))
                change = own_config.changes[-1]
                assert change.start_fraction == pytest.approx(generation / 3)
                assert change.lr / config.phase_at(donor_config, generation + 1).lr in (
                    pytest.approx(1.2), pytest.approx(0.8))  # fmt: skip
                assert own_config.seed == donor_config.seed  # the donor's run goes on
            else:
                assert parent.number == before[member].number and attrs["donor"] is None
    trained = sum(len(t.intermediate_values) - t.user_attrs.get("resumed_after_epoch", 0)
                  for t in found.values())  # fmt: skip
    assert trained == 4 * 3


def test_an_exploit_starts_from_the_donors_weights(tmp_path, run_here):
    """Generation 0 alone (its epochs are the budget): the next generation is queued, and an
    exploiting member's segment resumes from exactly its donor's checkpoint, not its own."""
    storage = f"sqlite:///{tmp_path / 'pbt.db'}"
    args = [*TINY, "--epochs", "2", "--scheduler", "pbt", "--population", "4",
            "--pbt-interval", "1", "--storage", storage, "--study", "pbt",
            "--checkpoint-dir", str(tmp_path / "checkpoints")]  # fmt: skip
    result = run_here("search.run", *args, "--epoch-budget", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="pbt", storage=storage)
    queued = study.get_trials(states=(TrialState.WAITING,))
    assert len(queued) == 4
    exploiter = next(t for t in queued if t.user_attrs["pbt"]["donor"] is not None)
    donor_segment = exploiter.user_attrs[spaces.CONTINUES][-1]
    own_segment = next(
        t.number for t in study.trials
        if t.user_attrs["pbt"]["member"] == exploiter.user_attrs["pbt"]["member"]
        and t.user_attrs["pbt"]["generation"] == 0
    )  # fmt: skip
    checkpoints = TrialCheckpoints(
        tmp_path / "checkpoints", "pbt", study.user_attrs["checkpoint_key"]
    )
    donor = torch.load(checkpoints.path(donor_segment), weights_only=True)
    planned = config.from_dict(donor["config"]).replace(
        changes=exploiter.user_attrs["pbt"]["changes"]
    )
    loaded = checkpoints.latest(exploiter, planned)  # what the objective resumes from
    for name, weights in loaded["model"].items():
        assert torch.equal(weights, donor["model"][name]), name
    assert loaded["history"] == donor["history"]
    own = study.trials[own_segment]  # the worst: nothing goes on from it, and its checkpoint
    assert not checkpoints.path(own_segment).exists()  # is gone
    assert own.intermediate_values[1] < donor["history"][0]["val_accuracy"]
    again = run_here("search.run", *args, cwd=tmp_path)  # the rest, without the budget
    assert again.returncode == 0, again.stderr
    assert len(segments(optuna.load_study(study_name="pbt", storage=storage))) == 8


def test_the_winners_exported_config_replays_its_whole_curve(tmp_path, run_here, sample):
    """The best member's last segment exported: its config holds the changes its lineage made,
    and trained from scratch (as search.train trains a config) gives the member's curve,
    epoch by epoch; search.train retrains it."""
    args = ["--space", "mlp", "--dataset", "sample", "--fix", "image_size=0,depth=1,width=128",
            "--epochs", "4", "--scheduler", "pbt", "--population", "4", "--pbt-interval", "1"]  # fmt: skip
    result = run_here("search.run", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    exported = run_here("search.export", "--study", "mlp-sample", "-o", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    chosen, provenance = config.read_file(tmp_path / "best.yaml")
    study = optuna.load_study(
        study_name="mlp-sample", storage=f"sqlite:///{tmp_path / 'studies.db'}"
    )
    winner = study.trials[provenance["trial"]]
    assert chosen.changes == config.changes_from(winner.user_attrs["pbt"]["changes"])
    replayed = trainer.train(
        chosen, sample.train, sample.val, sample.num_classes, torch.device("cpu")
    )
    assert [e.val_accuracy for e in replayed.history] == [
        winner.intermediate_values[epoch] for epoch in range(1, 5)
    ]
    retrained = run_here("search.train", "--config", "best.yaml", "--data-dir", ".", cwd=tmp_path)
    assert retrained.returncode == 0, retrained.stderr
    assert "population-based training of 4 members (an exploit every 1 epoch(s))" in result.stdout
    assert "population: 4 members, 4 generation(s)" in result.stdout
    report = run_here("search.report", "--study", "mlp-sample", "-o", "r.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    section = page[page.index("Population lineage") :][:2000]
    assert "not available" not in section and "plotly-graph-div" in section


def test_explore_perturbs_strengths_within_their_limits():
    factors = iter([1.2, 0.8, 1.2, 1.2])
    spec = {"flip": {}, "cutout": {"size": 8}, "mask": {"block": 4, "p": 0.9},
            "mixup": {"alpha": 0.5}}  # fmt: skip
    assert pbt.perturbed(spec, lambda: next(factors)) == {
        "flip": {}, "cutout": {"size": 10}, "mask": {"block": 4, "p": pytest.approx(0.72)},
        "mixup": {"alpha": 0.6},
    }  # fmt: skip
    assert pbt.perturbed({"grayscale": {"p": 0.9}}, lambda: 1.2) == {"grayscale": {"p": 1.0}}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--scheduler", "pbt", "--objectives", "accuracy,params"], "accuracy alone"),
        (["--scheduler", "pbt", "--pruner", "hyperband"], "leave out --pruner"),
        (["--scheduler", "pbt", "--checkpoint-dir", ""], "needs --checkpoint-dir"),
        (["--scheduler", "pbt", "--population", "1"], "--population must be at least 2"),
        (["--scheduler", "pbt", "--pbt-interval", "4"], "below --epochs 4"),
        (["--population", "4"], "--population is for --scheduler pbt"),
    ],
)  # fmt: skip
def test_a_population_that_cannot_run_is_one_line(tmp_path, run_here, flags, message):
    result = run_here("search.run", *TINY, "--epochs", "4", *flags, cwd=tmp_path)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert not (tmp_path / "studies.db").exists()


def test_a_generation_queued_in_part_keeps_every_parent_it_still_needs(tmp_path):
    """Issue 44: once the first of a generation's segments was queued, the keep-set shrank to
    that one's parent; a worker cleaning up then removed the parents of the segments not yet
    queued, and they retrained from scratch. The window held open: generation 0's four
    segments stopped at their interval's end (a real SQLite study), one of generation 1's is
    queued, a worker cleans up; once all four are queued, only what they go on from stays."""
    found = optuna.create_study(storage=f"sqlite:///{tmp_path / 'pbt.db'}", direction="maximize")
    plain, nested = config_attrs.split(config.TrialConfig(model="mlp", epochs=2))
    for member, value in enumerate((0.9, 0.8, 0.7, 0.6)):
        found.add_trial(optuna.trial.create_trial(
            state=TrialState.PRUNED, params={}, distributions={}, intermediate_values={1: value},
            user_attrs={"pbt": {"generation": 0, "member": member, "donor": None, "changes": []},
                        "config": plain, **{config_attrs.PREFIX + k: v for k, v in nested.items()}},
        ))  # fmt: skip
    checkpoints = TrialCheckpoints(tmp_path / "ckpt", "pbt",
                                   keeps=pbt.PopulationScheduler(8, population=POPULATION).keeps)  # fmt: skip
    checkpoints.folder.mkdir(parents=True)
    for number in range(4):
        checkpoints.path(number).write_bytes(b"state")
    segments_1 = list(POPULATION.next_generation(pbt.finished_members(found.trials, 0), 0))
    found.enqueue_trial(segments_1[0].params, user_attrs=segments_1[0].user_attrs)
    checkpoints.remove_finished(found, found.trials[3])
    assert all(checkpoints.path(number).exists() for number in range(4))
    for segment in segments_1[1:]:
        found.enqueue_trial(segment.params, user_attrs=segment.user_attrs)
    checkpoints.remove_finished(found, found.trials[3])
    parents = {t.user_attrs[spaces.CONTINUES][-1] for t in found.trials[4:]}
    assert {n for n in range(4) if checkpoints.path(n).exists()} == parents
    assert len(parents) == 3  # the worst quarter (one) goes on from the best: its own is gone
