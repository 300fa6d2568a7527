"""What a trained model gets right and wrong, checked against counts done by hand."""

import pytest
import torch
from torch import nn

from search.training import evaluation
from search.training.data import LabeledImages
from search.training.preprocess import Preprocess

CPU = torch.device("cpu")


def fixed_model() -> nn.Module:
    """Class = the brightest channel of the image (a linear model on channel means)."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3, bias=False))


def setup():
    model = fixed_model()
    with torch.no_grad():
        model[2].weight.copy_(torch.eye(3))
    images = torch.zeros(6, 3, 4, 4, dtype=torch.uint8)
    for index, channel in enumerate([0, 1, 2, 0, 1, 1]):
        images[index, channel] = 200
    labels = torch.tensor([0, 1, 2, 1, 1, 0])  # images 3 and 5 are labelled wrongly
    preprocess = Preprocess.build({"mean": [0.0] * 3, "std": [1.0] * 3}, CPU)
    return model, LabeledImages(images, labels), preprocess


def test_accuracy_and_loss_match_a_count_by_hand():
    model, eval_set, preprocess = setup()
    accuracy, loss = evaluation.accuracy_and_loss(model, eval_set, preprocess)
    assert accuracy == pytest.approx(4 / 6)
    logits = model(eval_set.images.float() / 255)
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, eval_set.labels).item())


def test_probabilities_are_a_softmax_over_classes():
    model, eval_set, preprocess = setup()
    probabilities = evaluation.predict_probabilities(model, eval_set.images, preprocess)
    assert torch.allclose(probabilities.sum(1), torch.ones(6))
    assert probabilities.argmax(1).tolist() == [0, 1, 2, 0, 1, 1]


def test_confusion_matrix_and_per_class_accuracy():
    predicted = torch.tensor([0, 1, 2, 0, 1, 1])
    labels = torch.tensor([0, 1, 2, 1, 1, 0])
    confusion = evaluation.confusion_matrix(predicted, labels, 3)
    assert confusion.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    per_class = evaluation.per_class_accuracy(confusion, ("a", "b", "c"))
    assert per_class == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 1.0})
    report = evaluation.format_report(confusion, ("a", "b", "c")).splitlines()
    assert report[0].split() == ["class", "accuracy", "images"]
    assert report[2].split() == ["b", "0.6667", "3"]
    assert report[-1].split() == ["c", "0", "0", "1"]


def test_latency_is_a_positive_median_over_repeats():
    model, eval_set, preprocess = setup()
    milliseconds = evaluation.latency_ms(model, eval_set.images, preprocess)
    assert 0 < milliseconds < 1000
