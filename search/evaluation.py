"""What a trained model gets right and wrong: class probabilities, confusion matrix, per class."""

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from search.device import synchronize
from search.tta import TTA

EVAL_BATCH_SIZE = 1024


def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    autocast: torch.autocast,
    tta: str = "none",
) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> float32 logits [N, classes], in large batches, on the
    images' device, with no host sync; averaged over the `tta` views (search/tta.py)."""
    views_of = TTA[tta]
    model.eval()
    logits = []
    with torch.no_grad(), autocast:
        for start in range(0, len(images), EVAL_BATCH_SIZE):
            views = views_of(normalize(images[start : start + EVAL_BATCH_SIZE]))
            logits.append(torch.stack([model(view).float() for view in views]).mean(0))
    return torch.cat(logits)


def predict_probabilities(
    model: nn.Module,
    images: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    autocast: torch.autocast,
    tta: str = "none",
) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> softmax probabilities [N, classes]."""
    return predict_logits(model, images, normalize, autocast, tta).softmax(1)


LATENCY_BATCH = 256  # images per timed forward pass: the same for every trial, so comparable
LATENCY_REPEATS = 5


def latency_ms(
    model: nn.Module,
    images: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    autocast: torch.autocast,
) -> float:
    """Median milliseconds for one forward pass of LATENCY_BATCH of `images` (uint8), on
    their device, after a warm-up pass; includes normalising (and resizing) the batch."""
    batch = images[:LATENCY_BATCH]
    model.eval()
    timings = []
    with torch.no_grad(), autocast:
        for repeat in range(LATENCY_REPEATS + 1):
            synchronize(batch.device)
            started = time.perf_counter()
            model(normalize(batch))
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
