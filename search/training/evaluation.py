"""What a trained model gets right and wrong: class probabilities, confusion matrix, per class."""

import statistics
import time

import torch
from torch import nn

from search.training.data import LabeledImages
from search.training.device import synchronize
from search.training.preprocess import Preprocess
from search.training.tta import ViewMaker, plain

EVAL_BATCH_SIZE = 1024


def predict_logits(
    model: nn.Module, images: torch.Tensor, preprocess: Preprocess, views_of: ViewMaker = plain
) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> float32 logits [N, classes], in large batches, on the
    images' device, with no host sync; the weighted sum over the test-time augmentation's
    views (tta.build(config.tta, config.tta_args); none by default)."""
    model.eval()
    logits = []
    with torch.no_grad(), preprocess.autocast:
        for start in range(0, len(images), EVAL_BATCH_SIZE):
            views = views_of(preprocess.normalize(images[start : start + EVAL_BATCH_SIZE]))
            logits.append(sum(weight * model(view).float() for weight, view in views))
    return torch.cat(logits)


def predict_probabilities(
    model: nn.Module, images: torch.Tensor, preprocess: Preprocess, views_of: ViewMaker = plain
) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> softmax probabilities [N, classes]."""
    return predict_logits(model, images, preprocess, views_of).softmax(1)


def accuracy_and_loss(
    model: nn.Module, eval_set: LabeledImages, preprocess: Preprocess, views_of: ViewMaker = plain
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) over eval_set, in large batches, one host sync at the end."""
    logits = predict_logits(model, eval_set.images, preprocess, views_of)
    correct = (logits.argmax(1) == eval_set.labels).sum()
    loss_sum = nn.functional.cross_entropy(logits, eval_set.labels, reduction="sum")
    correct_count, loss_total = torch.stack([correct, loss_sum]).double().tolist()
    return correct_count / len(eval_set), loss_total / len(eval_set)


LATENCY_BATCH = 256  # images per timed forward pass: the same for every trial, so comparable
LATENCY_REPEATS = 5


def latency_ms(model: nn.Module, images: torch.Tensor, preprocess: Preprocess) -> float:
    """Median milliseconds for one forward pass of LATENCY_BATCH of `images` (uint8), on
    their device, after a warm-up pass; includes normalising (and resizing) the batch."""
    batch = images[:LATENCY_BATCH]
    model.eval()
    timings = []
    with torch.no_grad(), preprocess.autocast:
        for repeat in range(LATENCY_REPEATS + 1):
            synchronize(batch.device)
            started = time.perf_counter()
            model(preprocess.normalize(batch))
            synchronize(batch.device)
            if repeat:  # the first pass pays for cuDNN's algorithm search
                timings.append(1000 * (time.perf_counter() - started))
    return statistics.median(timings)


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    """[classes, classes] counts: row = true class, column = predicted class."""
    pairs = labels.long() * classes + predicted.long()
    return torch.bincount(pairs, minlength=classes * classes).view(classes, classes).cpu()


def per_class_accuracy(confusion: torch.Tensor, class_names: tuple[str, ...]) -> dict[str, float]:
    totals = confusion.sum(1).clamp(min=1)
    return dict(zip(class_names, (confusion.diag() / totals).tolist(), strict=True))


def format_report(confusion: torch.Tensor, class_names: tuple[str, ...]) -> str:
    """Per-class accuracy, then the confusion matrix (rows true, columns predicted)."""
    width = max(len(name) for name in class_names)
    lines = [f"{'class':<{width}}  accuracy  images"]
    for (name, accuracy), total in zip(
        per_class_accuracy(confusion, class_names).items(), confusion.sum(1).tolist(), strict=True
    ):
        lines.append(f"{name:<{width}}  {accuracy:8.4f}  {total:6d}")
    if len(class_names) <= 20:  # beyond that a matrix no longer fits a terminal
        lines.append("confusion matrix (rows: true class, columns: predicted, in class order)")
        lines += [
            f"{name:<{width}}  " + " ".join(f"{count:5d}" for count in row)
            for name, row in zip(class_names, confusion.tolist(), strict=True)
        ]
    return "\n".join(lines)
