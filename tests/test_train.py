import pytest
import torch

from search.config import TrialConfig
from search.train import TrainingDiverged, train

CPU = torch.device("cpu")

SMALL_RESNET = TrialConfig(
    model="preact_resnet",
    model_args={"depth": 10, "width": 16},
    optimizer="sgd",
    optimizer_args={"momentum": 0.9, "nesterov": True},
    lr=0.2,
    weight_decay=5e-4,
    schedule="onecycle",
    batch_size=256,
    epochs=3,
    augment={"flip": {}, "crop": {"padding": 4}},
    label_smoothing=0.1,
    seed=0,
    dataset="sample",
)

MLP = TrialConfig(
    model="mlp",
    model_args={"width": 128, "depth": 2},
    optimizer="adamw",
    lr=1e-3,
    weight_decay=0.05,
    schedule="cosine",
    schedule_args={"warmup_fraction": 0.1},
    batch_size=128,
    epochs=2,
    augment={"flip": {}, "crop": {"padding": 2}, "cutout": {"size": 8}},
    grad_clip_norm=1.0,
    dataset="sample",
)


def test_the_trainer_learns_on_the_sample(sample):
    """Chance is 10%; a small ResNet gets far above it on 4,500 images in 3 epochs."""
    result = train(SMALL_RESNET, sample.train, sample.val, sample.num_classes, CPU)
    accuracies = [epoch.eval_accuracy for epoch in result.history]
    assert len(accuracies) == 3 and not result.stopped_early
    assert accuracies[-1] > 0.3
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.param_count > 0 and result.images_per_second > 0
    assert result.images_per_epoch == 4352  # 17 full batches of 256; the ragged one is dropped


def test_training_is_deterministic_on_the_cpu_given_the_seed(sample):
    first = train(MLP, sample.train, sample.val, sample.num_classes, CPU)
    second = train(MLP, sample.train, sample.val, sample.num_classes, CPU)
    other_seed = train(MLP.replace(seed=1), sample.train, sample.val, sample.num_classes, CPU)
    losses = [[e.train_loss for e in r.history] for r in (first, second, other_seed)]
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]
    assert [e.eval_accuracy for e in first.history] == [e.eval_accuracy for e in second.history]


def test_the_callback_sees_every_epoch_and_can_stop_training(sample):
    seen = []

    def stop_after_two(epoch):
        seen.append(epoch.epoch)
        return epoch.epoch == 2

    result = train(MLP.replace(epochs=5), sample.train, sample.val, 10, CPU, stop_after_two)
    assert seen == [1, 2]
    assert result.stopped_early and len(result.history) == 2


def test_a_diverging_loss_raises_instead_of_training_on(sample):
    hopeless = MLP.replace(optimizer="sgd", optimizer_args={}, lr=1e12, grad_clip_norm=0.0)
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(hopeless, sample.train, sample.val, sample.num_classes, CPU)
