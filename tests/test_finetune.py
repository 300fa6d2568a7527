"""Fine-tuning: starting from a checkpoint's weights, a new head for other classes, freezing,
class subsets and two-stage augmentation; end to end as a user runs it (real processes)."""

import torch
import yaml

from models import parts
from search.training import checkpoint, config
from search.training.config import TrialConfig
from search.training.trainer import train

CPU = torch.device("cpu")
FIRST_FIVE = ["airplane", "automobile", "bird", "cat", "deer"]
OTHER_FIVE = ["dog", "frog", "horse", "ship", "truck"]
MLP = TrialConfig(model="mlp", model_args={"width": 32, "depth": 2}, optimizer="sgd", lr=0.05,
                  schedule="constant", batch_size=256, epochs=1, dataset="sample")  # fmt: skip


def pretrained(sample, folder, trial_config=MLP, classes=10) -> str:
    """A checkpoint of trial_config trained one epoch on the sample's first `classes`."""
    subset = sample.train.subset(sample.train.labels < classes)
    result = train(trial_config, subset, subset, classes, CPU)
    path = folder / "pretrained.pt"
    checkpoint.write(path, checkpoint.SavedNetwork.of(
        result.model, result.normalization, trial_config, sample.classes[:classes], (3, 32, 32)
    ))  # fmt: skip
    return str(path)


def test_weights_are_loaded_and_the_head_replaced_only_for_another_class_count(sample, tmp_path):
    path = pretrained(sample, tmp_path)
    saved = torch.load(path, weights_only=False)["state_dict"]
    still = MLP.replace(init_from=path, lr=0.0)  # nothing moves: what trains is what loaded
    same = train(still, sample.train, sample.val, 10, CPU).model
    assert all(torch.equal(same.state_dict()[k], v) for k, v in saved.items())
    five = sample.train.subset(sample.train.labels < 5)
    other = train(still, five, five, 5, CPU).model
    head_name, head = parts.head(other)
    assert head.out_features == 5
    assert torch.equal(other.state_dict()["1.weight"], saved["1.weight"])  # the first layer
    assert not torch.equal(head.weight, saved[f"{head_name}.weight"][:5])  # a fresh head


def test_freezing_the_body_leaves_it_bit_identical(sample, tmp_path):
    net = MLP.replace(model="convnet", model_args={"width": 4, "blocks": 2})
    path = pretrained(sample, tmp_path, net)
    saved = torch.load(path, weights_only=False)["state_dict"]
    tuned = train(net.replace(init_from=path, freeze={"body": 0}, epochs=2), sample.train,
                  sample.val, 10, CPU).model  # fmt: skip
    head_name, _ = parts.head(tuned)
    for name, tensor in tuned.state_dict().items():
        moved = not torch.equal(tensor, saved[name])
        assert moved == name.startswith(head_name), name  # BN statistics stay put too


def test_a_second_phase_switches_the_augmentation_at_its_epoch(sample):
    """Epochs 1-2 see only masked (all-zero) images, so the loss stays at chance; from epoch 3
    the images are plain and the loss falls."""
    staged = MLP.replace(
        epochs=4, augment={"mask": {"block": 1, "p": 1.0}},
        second_phase={"start_fraction": 0.5, "optimizer": "sgd", "lr": 0.05, "augment": {}},
    )  # fmt: skip
    losses = [epoch.train_loss for epoch in train(staged, sample.train, sample.val, 10,
                                                  CPU).history]  # fmt: skip
    assert min(losses[:2]) > 2.25  # ln 10 = 2.30: nothing to learn from
    assert losses[2] < losses[1] - 0.1 and losses[3] < losses[2]


def test_a_class_subset_relabels_in_the_order_given(sample):
    from search.training import data

    subset = data.load("sample", "unused", classes=["truck", "cat"])
    assert subset.classes == ("truck", "cat")
    assert (len(subset.train) + len(subset.val), len(subset.test)) == (1000, 200)
    assert subset.test.labels.bincount().tolist() == [100, 100]
    truck = sample.classes.index("truck")
    assert torch.equal(subset.test.images[subset.test.labels == 0],
                       sample.test.images[sample.test.labels == truck])  # fmt: skip


def test_fine_tuning_end_to_end_as_a_user_runs_it(sample, tmp_path, run_here):
    """Train on five classes; search the fine-tuning on the other five from that checkpoint;
    export; retrain; the test accuracy is printed and the head has five outputs."""
    config.write_file(tmp_path / "mlp.yaml", MLP)
    trained = run_here("search.train", "--config", "mlp.yaml", "--classes",
                       ",".join(FIRST_FIVE), "--output-dir", "five", cwd=tmp_path)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    searched = run_here(
        "search.run", "--space", "finetune", "--init-from", "five/checkpoint.pt", "--classes",
        ",".join(OTHER_FIVE), "--dataset", "sample", "--epochs", "1", "--trials", "2",
        "--warm-start", cwd=tmp_path,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    assert "study finetune-sample" in searched.stdout
    assert run_here("search.export", "--study", "finetune-sample", cwd=tmp_path).returncode == 0
    exported = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert exported["classes"] == OTHER_FIVE
    assert exported["init_from"] == str((tmp_path / "five" / "checkpoint.pt").resolve())
    retrained = run_here("search.train", "--config", "best.yaml", cwd=tmp_path)
    assert retrained.returncode == 0, retrained.stderr
    assert "test accuracy" in retrained.stdout and "dog" in retrained.stdout
    final = torch.load(tmp_path / "runs" / "best" / "checkpoint.pt", weights_only=False)
    assert final["classes"] == OTHER_FIVE


def test_a_checkpoint_that_does_not_fit_and_an_unknown_class_are_one_line(
    sample, tmp_path, run_here
):
    path = pretrained(sample, tmp_path)
    misfit = MLP.replace(model_args={"width": 64, "depth": 2}, init_from=path)
    config.write_file(tmp_path / "misfit.yaml", misfit)
    result = run_here("search.train", "--config", "misfit.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"search.train: error: checkpoint {path} does not fit mlp: layer 1.weight is [32, 3072] "
        "in the checkpoint and [64, 3072] in the config's network"
    ]
    unknown = run_here("search.run", "--space", "mlp", "--dataset", "sample", "--classes",
                       "cat,unicorn", cwd=tmp_path)  # fmt: skip
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "search.run: error: --classes: sample has no class 'unicorn' cat,unicorn; its classes "
        "are: airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck"
    )
