"""What the version before issue 29 wrote (tests/fixtures/legacy, made by that code) still
loads, trains as it did, resumes and continues: configs with schedule lengths in epochs, a
trial's per-epoch checkpoint, a study and a retrain's checkpoint."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from search.training import checkpoint, config, evaluation, legacy, trainer, tta

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
CPU = torch.device("cpu")
HISTORIES = json.loads((FIXTURES / "histories.json").read_text())


@pytest.fixture
def notes(caplog, monkeypatch):
    """What search.legacy says, from a fresh process's state (nothing said yet)."""
    monkeypatch.setattr(legacy, "_said", set())
    # a command run earlier in this process (cli.configure_logging) may have given our
    # loggers their own stderr handler, which keeps their records from pytest's
    monkeypatch.setattr(logging.getLogger("search"), "propagate", True)
    caplog.set_level(logging.INFO, logger="search.legacy")
    return caplog


def test_old_schedule_lengths_read_as_fractions_of_their_phase_and_it_is_said_once(notes):
    best, _ = config.read_file(FIXTURES / "legacy-best.yaml")
    # step every 1 epoch of a first phase of round(0.529 x 3) = 2 epochs
    assert best.schedule_args == {"step_fraction": 0.5, "gamma": 0.127494051024847}
    assert best.second_phase.schedule == "cosine" and best.second_phase.schedule_args == {}
    cyclic, _ = config.read_file(FIXTURES / "legacy-cyclic.yaml")
    assert cyclic.schedule_args == {"cycle_fraction": 1.5 / 4, "base_fraction": 0.1}
    plateau, _ = config.read_file(FIXTURES / "legacy-plateau.yaml")
    assert plateau.schedule_args == {"factor": 0.5, "patience_fraction": 1 / 4}
    exponential, _ = config.read_file(FIXTURES / "legacy-exponential.yaml")
    assert exponential.schedule_args == {"gamma_per_run": pytest.approx(0.7**4)}
    said = [record.getMessage() for record in notes.records]
    assert len(said) == 1 and "legacy-best.yaml was written by an earlier version" in said[0]
    assert "schedule_args.step_epochs" in said[0]


def test_a_second_phase_that_kept_the_old_lengths_gets_them_against_its_own_epochs():
    written = {"model": "mlp", "epochs": 10, "schedule": "step",
               "schedule_args": {"step_epochs": 2, "gamma": 0.5},
               "second_phase": {"start_fraction": 0.6, "optimizer": "sgd", "lr": 0.1}}  # fmt: skip
    read = config.from_dict(written)
    assert read.schedule_args["step_fraction"] == 2 / 6
    assert read.second_phase.schedule_args == {"step_fraction": 2 / 4, "gamma": 0.5}


@pytest.mark.parametrize("name", sorted(HISTORIES))
def test_old_configs_train_as_the_old_version_trained_them(name, sample):
    """The same run at its epochs: each epoch's validation accuracy exactly, its training loss
    to float32 rounding (another CPU's vector units sum the batch's losses in another order:
    an AMD EPYC differs from the recording machine in the 7th digit) and its learning rate to
    rounding (step decay and cycles are now functions of the run's progress, no longer torch's
    StepLR and CyclicLR)."""
    old, _ = config.read_file(FIXTURES / f"{name}.yaml")
    history = trainer.train(old, sample.train, sample.val, sample.num_classes, CPU).history
    expected = HISTORIES[name]
    assert [e.val_accuracy for e in history] == [e["val_accuracy"] for e in expected]
    losses = [e["train_loss"] for e in expected]
    assert [e.train_loss for e in history] == pytest.approx(losses, rel=1e-5)
    assert [e.lr for e in history] == pytest.approx([e["lr"] for e in expected], rel=1e-12)


def test_an_old_trials_checkpoint_resumes_and_ends_as_the_old_run_did(sample):
    """Saved after epoch 1 by the old version (its step decay as torch's StepLR state, its
    history as eval_accuracy): resumed here across the phase switch to the same end."""
    old, _ = config.read_file(FIXTURES / "legacy-best.yaml")
    saved = torch.load(FIXTURES / "legacy-best-epoch1.pt", weights_only=True)
    resumed = trainer.train(old, sample.train, sample.val, sample.num_classes, CPU,
                            resume_from=saved).history  # fmt: skip
    expected = HISTORIES["legacy-best"]
    assert [e.val_accuracy for e in resumed] == [e["val_accuracy"] for e in expected]
    assert [e.train_loss for e in resumed] == [e["train_loss"] for e in expected]


def test_an_old_study_resumes_and_its_trials_export_in_this_versions_terms(
    tmp_path, run_here, notes
):
    shutil.copy(FIXTURES / "legacy.db", tmp_path / "legacy.db")
    storage = "sqlite:///legacy.db"
    more = run_here(
        "search.run", "--space", "test_schedules", "--space-module", "tests.spaces_for_tests",
        "--dataset", "sample", "--epochs", "3", "--trials", "10", "--sampler", "random",
        "--seed", "3", "--storage", storage, "--study", "legacy", "--checkpoint-dir", "",
        "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert more.returncode == 0, more.stderr
    assert "study legacy: 8/10 trials finished" in more.stdout
    exported = run_here("search.export", "--study", "legacy", "--storage", storage,
                        "--trial", "1", "-o", "one.yaml", cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    written = yaml.safe_load((tmp_path / "one.yaml").read_text())
    assert written["schedule_args"] == {"step_fraction": 0.5, "gamma": 0.127494051024847}
    assert written["second_phase"]["schedule"] == "cosine"
    assert "was written by an earlier version" in exported.stderr


def test_an_old_retrain_checkpoint_is_read_once_and_scores_what_it_recorded(sample):
    """search.train's checkpoint of the old version: its config read in this version's terms,
    the network rebuilt and scoring on the test set exactly the accuracy it recorded, and the
    same record shared by a second read of the unchanged file."""
    path = FIXTURES / "retrain-checkpoint.pt"
    saved = checkpoint.read(path)
    # legacy-cyclic.yaml retrained at 1 epoch: its 1.5-epoch cycle is 1.5 of that run
    assert saved.config.schedule_args == {"cycle_fraction": 1.5, "base_fraction": 0.1}
    assert checkpoint.read(path) is saved
    loaded = checkpoint.load(path, CPU)
    views = tta.build(loaded.config.tta, loaded.config.tta_args)
    accuracy, _ = evaluation.accuracy_and_loss(loaded.model, sample.test, loaded.preprocess, views)
    assert accuracy == saved.metrics["test_accuracy"]
