"""Retraining a chosen config for real: on train+val, measured on the test set (the only place
the test set is read), written as a self-describing checkpoint, metrics.json and the resolved
config.yaml."""

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from registry import RunFailure, UsageError, files
from search.training import checkpoint, config, device, evaluation, retrain_report, tta
from search.training.config import TrialConfig
from search.training.data import Dataset
from search.training.trainer import EpochResult, TrainingDiverged, train

# What a retrain writes in its folder: name -> whether it is text (a checkpoint is not).
OUTPUTS = {"checkpoint.pt": False, "metrics.json": True, "config.yaml": True,
           "history.csv": True, "report.html": True}  # fmt: skip


def output_folder(chosen: Path | None, default: Path, overwrite: bool) -> Path:
    """Where a retrain writes: the folder asked for, else `default` or, unless `overwrite`, the
    first fresh one after it (fresh_folder)."""
    if chosen is not None:
        return chosen
    return default if overwrite else fresh_folder(default)


def fresh_folder(wanted: Path) -> Path:
    """`wanted`, or if an earlier run is there, the first of wanted-1, wanted-2, ... that holds
    none (timm's output folders): a retrain never replaces another unless told to."""
    candidate, number = wanted, 0
    while (candidate / "checkpoint.pt").exists():
        number += 1
        candidate = wanted.with_name(f"{wanted.name}-{number}")
    return candidate


def check_outputs(output_dir: Path, reads: list[Path | str], overwrite: bool) -> None:
    """Before training: the files a retrain writes can be written, none of them is one it
    reads (the config, the checkpoint it starts from), and no earlier run is replaced unless
    `overwrite`."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output-dir {output_dir} is a file, not a folder")
    if not overwrite and (output_dir / "checkpoint.pt").exists():
        raise UsageError(
            f"--output-dir {output_dir} holds an earlier run; pass --overwrite to replace it, "
            "or name another folder"
        )
    for name, text in OUTPUTS.items():
        files.check_output(output_dir / name, reads, text=text)


@dataclasses.dataclass(frozen=True)
class Retrained:
    metrics: dict[str, Any]
    report: str  # the per-class table and the confusion matrix, for a person to read
    output_dir: Path
    model: torch.nn.Module  # trained, on its device, in eval mode
    history: list[EpochResult]


PAGES_BYTES = 2**20  # metrics, config, history and the report page, generously


def check_room(output_dir: Path, model: torch.nn.Module, copies: int = 1) -> None:
    """Before the first epoch, not after the last: a disk without room for the checkpoint
    (the network's weights, `copies` times) and the pages beside it is one line, and no
    training is lost to the write that would have failed."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    needed = copies * weights + PAGES_BYTES
    free = shutil.disk_usage(output_dir).free
    if free < needed:
        raise files.OutOfSpace(
            f"{output_dir} has {free / 2**20:.2f} MiB free; the checkpoint and its pages need "
            f"about {needed / 2**20:.1f} MiB: free some space or choose another --output-dir"
        )


def retrain(
    trial_config: TrialConfig,
    dataset: Dataset,
    on_device: torch.device,
    output_dir: Path,
    provenance: dict[str, Any],
    on_epoch: Callable[[EpochResult], bool] | None = None,
    compile_model: str = "",
    safetensors: bool = False,
) -> Retrained:
    """Train trial_config on the dataset's train+val, evaluate it on the test set and write
    output_dir/checkpoint.pt, metrics.json and config.yaml (with `provenance`)."""
    copies = 2 if safetensors else 1
    try:
        result = train(
            trial_config, dataset.train + dataset.val, dataset.test, dataset.num_classes,
            on_device, on_epoch=on_epoch, eval_is_test=True, compile_model=compile_model,
            on_start=lambda state: check_room(output_dir, state.model, copies),
        )  # fmt: skip
    except TrainingDiverged as error:
        raise RunFailure(f"training diverged: {error}; lower the config's lr") from None
    test_set = dataset.test.to(on_device)
    views_of = tta.build(trial_config.tta, trial_config.tta_args)
    probabilities = evaluation.predict_probabilities(
        result.model, test_set.images, result.preprocess, views_of
    )
    confusion = evaluation.confusion_matrix(
        probabilities.argmax(1), test_set.labels, dataset.num_classes
    )
    metrics = {
        "test_accuracy": result.final.test_accuracy,
        "test_loss": result.final.test_loss,
        "train_loss": result.final.train_loss,
        "epochs": len(result.history),
        "param_count": result.param_count,
        "seconds_per_epoch": result.seconds_per_epoch,
        "images_per_second": result.images_per_second,
        "compile_seconds": result.compile_seconds,
        "device": device.describe(on_device),
        "per_class_accuracy": evaluation.per_class_accuracy(confusion, dataset.classes),
        "confusion_matrix": confusion.tolist(),
    }
    # The checkpoint first: it is what hours of training made. Each file is written atomically.
    output_dir.mkdir(parents=True, exist_ok=True)
    saved = checkpoint.SavedNetwork.of(
        result.model, result.normalization, trial_config, dataset.classes, dataset.image_shape,
        metrics,
    )  # fmt: skip
    checkpoint.write(output_dir / "checkpoint.pt", saved)
    files.write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    config.write_file(output_dir / "config.yaml", trial_config, provenance)
    retrain_report.write_history(output_dir / "history.csv", result.history)
    retrain_report.write_page(
        output_dir / "report.html", f"{trial_config.model} retrained on {dataset.name}",
        result.history, metrics, (output_dir / "config.yaml").read_text(),
    )  # fmt: skip
    if safetensors:
        checkpoint.write_safetensors(output_dir, saved)
    report = evaluation.format_report(confusion, dataset.classes)
    return Retrained(metrics, report, output_dir, result.model.eval(), result.history)
