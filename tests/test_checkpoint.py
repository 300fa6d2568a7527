"""Checkpoints that rebuild themselves: saved, loaded, and refused when they are not ours."""

import pytest
import torch

from registry import UsageError
from search.training import checkpoint, evaluation, tta
from search.training.config import TrialConfig
from search.training.trainer import train

CONFIG = TrialConfig(model="mlp", model_args={"width": 16, "depth": 1}, lr=0.05,
                     schedule="constant", batch_size=256, epochs=1, tta="mirror",
                     dataset="sample")  # fmt: skip


def test_a_loaded_checkpoint_predicts_exactly_as_the_trained_model(sample, tmp_path):
    cpu = torch.device("cpu")
    result = train(CONFIG, sample.train, sample.val, sample.num_classes, cpu)
    path = tmp_path / "checkpoint.pt"
    checkpoint.write(path, checkpoint.SavedNetwork.of(
        result.model, result.normalization, CONFIG, sample.classes, sample.image_shape,
        {"test_accuracy": 0.5},
    ))  # fmt: skip
    loaded = checkpoint.load(path, cpu)
    assert loaded.config == CONFIG and loaded.classes == sample.classes
    assert loaded.image_shape == (3, 32, 32) and loaded.metrics == {"test_accuracy": 0.5}
    assert not loaded.model.training
    images = sample.test.images[:50]
    expected = evaluation.predict_probabilities(
        result.model, images, result.preprocess, tta.build("mirror")
    )
    assert torch.equal(loaded.predict_probabilities(images), expected)


def test_what_is_not_a_checkpoint_is_one_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "none.pt", torch.device("cpu"))
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(UsageError, match="is not a checkpoint written by search.train"):
        checkpoint.load(tmp_path / "text.pt", torch.device("cpu"))
    torch.save({"state_dict": {}}, tmp_path / "partial.pt")
    with pytest.raises(UsageError, match="is not a checkpoint written by search.train"):
        checkpoint.load(tmp_path / "partial.pt", torch.device("cpu"))
