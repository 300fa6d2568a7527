"""What a study ran on, written as its optuna-dashboard note so results can be read later."""

import platform

import optuna
import torch

from search.training.data import Dataset


def versions() -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
    }
    if torch.cuda.is_available():
        found["cuda"] = str(torch.version.cuda)
        found["gpus"] = ", ".join(
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        )
    return found


def describe_software() -> str:
    """'python 3.11.7, torch 2.11.0, optuna 5.0.0, ...' for notes and benchmark headers."""
    return ", ".join(f"{name} {version}" for name, version in versions().items())


def study_note(command: str, dataset: Dataset, workers: int) -> str:
    """Markdown: the command (or API call), the data and its splits, the hardware and
    software."""
    software = describe_software()
    return "\n".join(
        [
            "## How this study was run",
            "",
            f"    {command}",
            "",
            f"- dataset: **{dataset.name}**, {dataset.num_classes} classes, images "
            f"{'x'.join(map(str, dataset.image_shape))}",
            f"- splits: {len(dataset.train)} train / {len(dataset.val)} validation (seeded, "
            f"class-balanced, held out from the training set; selection never sees the "
            f"{len(dataset.test)} test images)",
            f"- host: {platform.node()}, {platform.processor() or platform.machine()}, "
            f"{workers} worker(s)",
            f"- software: {software}",
            "",
            "Each trial's learning curve is its validation accuracy per epoch; its user "
            "attributes hold the whole training config and why it was pruned or failed.",
        ]
    )
