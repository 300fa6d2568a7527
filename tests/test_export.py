"""export -> train round trip: the exported YAML is the trial's config, and retraining it
writes a checkpoint that rebuilds the model."""

import json

import optuna
import pytest
import torch
import yaml

import models
from search.training import config, evaluation, tta
from search.training.preprocess import Preprocess
from search.tuning.records import config_attrs
from tests.conftest import record_settings


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    """A study of 3 mlp trials in the default studies.db of a folder, run by search.run in
    this process (what a user sees of it is tests/test_run.py's)."""
    from search import run

    folder = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        argv = ["--space", "mlp", "--trials", "3", "--dataset", "sample", "--epochs", "2",
                "--fix", "image_size=0", "--pruner", "none", "--study", "demo"]  # fmt: skip
        assert run.main(argv) == 0
    return folder


def trials(folder):
    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{folder / 'studies.db'}")
    return study, study.get_trials()


def test_export_writes_the_best_trials_config_exactly(study_folder, run_here):
    result = run_here("search.export", "--study", "demo", "-o", "best.yaml", cwd=study_folder)
    assert result.returncode == 0, result.stderr
    study, _ = trials(study_folder)
    exported, provenance = config.read_file(study_folder / "best.yaml")
    assert exported.to_dict() == config_attrs.stored(study.best_trial)
    assert provenance["trial"] == study.best_trial.number
    assert provenance["val_accuracy"] == study.best_value
    assert provenance["study"] == "demo" and provenance["params"] == study.best_trial.params


def test_export_top_k_and_a_chosen_trial(study_folder, run_here):
    result = run_here("search.export", "--study", "demo", "--top", "2", "-o", "top.yaml",
                      cwd=study_folder)  # fmt: skip
    assert result.returncode == 0, result.stderr
    study, all_trials = trials(study_folder)
    ranked = sorted(all_trials, key=lambda t: t.value, reverse=True)
    for rank in (1, 2):
        document = yaml.safe_load((study_folder / f"top-{rank}.yaml").read_text())
        assert document["provenance"]["trial"] == ranked[rank - 1].number
    result = run_here("search.export", "--study", "demo", "--trial", "0", "-o", "zero.yaml",
                      cwd=study_folder)  # fmt: skip
    assert result.returncode == 0, result.stderr
    exported, _ = config.read_file(study_folder / "zero.yaml")
    assert exported.to_dict() == config_attrs.stored(all_trials[0])


def test_train_retrains_the_export_and_writes_a_self_describing_checkpoint(
    study_folder, sample, run_here
):
    assert run_here("search.export", "--study", "demo", cwd=study_folder).returncode == 0
    result = run_here("search.train", "--config", "best.yaml", "--output-dir", "out",
                      cwd=study_folder)  # fmt: skip
    assert result.returncode == 0, result.stderr
    exported, provenance = config.read_file(study_folder / "best.yaml")
    resolved, resolved_provenance = config.read_file(study_folder / "out" / "config.yaml")
    assert resolved == exported and resolved_provenance == provenance
    metrics = json.loads((study_folder / "out" / "metrics.json").read_text())
    assert metrics["epochs"] == exported.epochs
    assert 0.15 < metrics["test_accuracy"] <= 1  # chance is 0.10
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in result.stdout
    confusion = torch.tensor(metrics["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == len(sample.test)
    assert confusion.diag().sum() / confusion.sum() == pytest.approx(metrics["test_accuracy"])
    assert list(metrics["per_class_accuracy"]) == list(sample.classes)
    assert "confusion matrix (rows: true class" in result.stdout
    assert "airplane" in result.stdout.split("confusion matrix")[0]  # the per-class table

    saved = torch.load(study_folder / "out" / "checkpoint.pt", weights_only=False)
    assert saved["config"] == exported.to_dict()
    assert saved["classes"] == list(sample.classes)
    model = models.build(  # rebuilt from what the file holds, without the study
        saved["config"]["model"],
        num_classes=len(saved["classes"]),
        image_shape=exported.input_shape(saved["image_shape"]),
        **saved["config"]["model_args"],
    )
    model.load_state_dict(saved["state_dict"])
    preprocess = Preprocess.build(saved["normalization"], torch.device("cpu"), exported.image_size)
    views = tta.build(exported.tta, exported.tta_args)
    accuracy, _ = evaluation.accuracy_and_loss(model, sample.test, preprocess, views)
    assert accuracy == pytest.approx(metrics["test_accuracy"])


def test_train_epochs_override_is_recorded_in_the_resolved_config(study_folder, run_here):
    assert (
        run_here("search.export", "--study", "demo", "-o", "e.yaml", cwd=study_folder).returncode
        == 0
    )
    result = run_here("search.train", "--config", "e.yaml", "--epochs", "1", cwd=study_folder)
    assert result.returncode == 0, result.stderr
    resolved, _ = config.read_file(study_folder / "runs" / "e" / "config.yaml")
    assert resolved.epochs == 1
    assert json.loads((study_folder / "runs" / "e" / "metrics.json").read_text())["epochs"] == 1


def test_export_as_json_holds_the_same_config(study_folder, run_here):
    result = run_here("search.export", "--study", "demo", "-o", "best.json", cwd=study_folder)
    assert result.returncode == 0, result.stderr
    document = json.loads((study_folder / "best.json").read_text())
    study, _ = trials(study_folder)
    assert document["provenance"]["val_accuracy"] == study.best_value
    exported, _ = config.read_file(study_folder / "best.json")
    assert exported.to_dict() == config_attrs.stored(study.best_trial)


def test_pareto_exports_the_front_of_a_multi_objective_study(study_folder, tmp_path, run_here):
    _, source_trials = trials(study_folder)
    storage = f"sqlite:///{tmp_path / 'mo.db'}"
    multi = optuna.create_study(study_name="mo", storage=storage,
                                directions=["maximize", "minimize"])  # fmt: skip
    multi.set_metric_names(["val_accuracy", "param_count"])
    record_settings(multi, objectives=("accuracy", "params"), pruner="none")
    for accuracy, params in ((0.5, 100), (0.6, 200), (0.4, 300), (0.7, 400)):
        trial = multi.ask()
        trial.set_user_attr(
            "config", config_attrs.stored(source_trials[0])
        )  # as older versions stored it
        multi.tell(trial, [accuracy, params])
    front = run_here("search.export", "--study", "mo", "--storage", storage, "--pareto",
                     "-o", "front.yaml", cwd=tmp_path)  # fmt: skip
    assert front.returncode == 0, front.stderr
    written = sorted(p.name for p in tmp_path.glob("front-*.yaml"))
    assert written == ["front-1.yaml", "front-2.yaml", "front-3.yaml"]  # (0.4, 300) is dominated
    document = yaml.safe_load((tmp_path / "front-3.yaml").read_text())["provenance"]
    assert (document["val_accuracy"], document["param_count"]) == (0.7, 400)

    for study_name, where, message in (
        ("mo", storage, "use --pareto"),
        ("demo", f"sqlite:///{study_folder / 'studies.db'}", "--pareto needs several"),
    ):
        extra = [] if message == "use --pareto" else ["--pareto"]
        refused = run_here("search.export", "--study", study_name, "--storage", where, *extra,
                           cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 2 and message in refused.stderr
