"""Checkpoints that describe themselves: weights plus everything needed to rebuild and use them."""

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

import models
from models import layers, parts
from registry import UsageError, files
from search.training import config, data, evaluation, tta
from search.training.config import TrialConfig
from search.training.preprocess import Preprocess


def save(
    path: Path,
    *,
    model: nn.Module,
    normalization: dict[str, list[float]],
    trial_config: TrialConfig,
    classes: tuple[str, ...],
    image_shape: tuple[int, int, int],
    metrics: dict[str, Any],
) -> None:
    """The file rebuilds the model (models.build with the config) without opening the study.
    Written atomically: an interrupted save leaves the old checkpoint or none."""
    with files.atomic_path(path) as partial:
        torch.save(
            {
                "state_dict": model.state_dict(),
                "config": trial_config.to_dict(),
                "classes": list(classes),
                "image_shape": list(image_shape),
                "normalization": normalization,
                "metrics": metrics,
            },
            partial,
        )


def write_safetensors(
    folder: Path,
    *,
    model: nn.Module,
    normalization: dict[str, list[float]],
    trial_config: TrialConfig,
    classes: tuple[str, ...],
    image_shape: tuple[int, int, int],
) -> None:
    """model.safetensors and config.json beside them, for loading the weights elsewhere: the
    fields of timm's pretrained_cfg (input_size, mean and std in [0, 1] units, the class
    names, bilinear resizing, no crop) and how to build the network (models.build)."""
    from safetensors.torch import save_file

    tensors = {name: value.detach().cpu().contiguous().clone()
               for name, value in model.state_dict().items()}  # fmt: skip
    with files.atomic_path(folder / "model.safetensors") as partial:
        save_file(tensors, str(partial))
    described = {
        "architecture": trial_config.model,
        "model_args": trial_config.model_args,
        "num_classes": len(classes),
        "label_names": list(classes),
        "input_size": list(trial_config.input_shape(image_shape)),
        "mean": normalization["mean"],
        "std": normalization["std"],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
    }
    files.write_text(folder / "config.json", json.dumps(described, indent=2) + "\n")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the model in eval mode on its device, and how to feed it."""

    model: nn.Module
    config: TrialConfig
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # of the dataset it was trained on, before any resize
    preprocess: Preprocess
    metrics: dict[str, Any]

    def predict_probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [N, C, H, W] of image_shape -> class probabilities, with the config's
        test-time augmentation."""
        views_of = tta.build(self.config.tta, self.config.tta_args)
        return evaluation.predict_probabilities(self.model, images, self.preprocess, views_of)

    def classify(self, paths: list[Path], top: int = 1) -> list[list[tuple[str, float]]]:
        """Image files (each resized to what the network was trained on) -> for each, its
        `top` classes with their probabilities, most likely first."""
        size = self.image_shape[1:]
        decoded = [data.decode_image(data.read_image(path), size=size, name=str(path))
                   for path in paths]  # fmt: skip
        on_device = next(self.model.parameters()).device
        probabilities = self.predict_probabilities(torch.stack(decoded).to(on_device))
        values, indices = probabilities.topk(min(max(1, top), len(self.classes)), dim=1)
        return [
            [(self.classes[index], value) for value, index in zip(row, chosen, strict=True)]
            for row, chosen in zip(values.tolist(), indices.tolist(), strict=True)
        ]


def read(path: Path | str, on_device: torch.device | str = "cpu") -> dict[str, Any]:
    """The saved dictionary, or one UsageError line when the file is not a checkpoint."""
    try:
        saved = torch.load(path, map_location=on_device, weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}") from None
    except OSError as error:  # a folder, or a file that cannot be read
        raise UsageError(f"cannot read checkpoint {path}: {error.strerror}") from None
    except pickle.UnpicklingError:  # not torch's format, or objects no checkpoint of ours holds
        raise UsageError(f"{path} is not a checkpoint written by search.train") from None
    except Exception as error:  # torch's weights-only reader fails on garbage in many ways
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{path} is not a checkpoint written by search.train ({reason})") from None
    if not isinstance(saved, dict) or not {"state_dict", "config", "classes"} <= set(saved):
        raise UsageError(f"{path} is not a checkpoint written by search.train")
    return saved


def misfit(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> str | None:
    """The first layer whose saved weights do not fit the model, described, or None."""
    own = model.state_dict()
    for name, tensor in own.items():
        if name not in state_dict:
            return f"the checkpoint has no {name}"
        if tensor.shape != state_dict[name].shape:
            return (
                f"layer {name} is {list(state_dict[name].shape)} in the checkpoint and "
                f"{list(tensor.shape)} in the config's network"
            )
    # A BatchNorm step counter of an older checkpoint is dropped as it loads (models.layers).
    extra = [name for name in state_dict
             if name not in own and not name.endswith(f".{layers.STEP_COUNTER}")]  # fmt: skip
    return f"the config's network has no {extra[0]}" if extra else None


def pretrained(
    path: str, trial_config: TrialConfig, num_classes: int, image_shape: tuple[int, int, int]
) -> nn.Module:
    """The config's network with the weights of the checkpoint at `path` (fine-tuning): built
    for the checkpoint's class count, loaded, and given a fresh classifier head for
    num_classes if that differs. A network that does not fit is one UsageError line that
    names the layer."""
    saved = read(path)
    model = models.build(
        trial_config.model, num_classes=len(saved["classes"]), image_shape=image_shape,
        init=trial_config.init, **trial_config.model_args,
    )  # fmt: skip
    problem = misfit(model, saved["state_dict"])
    if problem:
        raise UsageError(f"checkpoint {path} does not fit {trial_config.model}: {problem}")
    model.load_state_dict(saved["state_dict"])
    if len(saved["classes"]) != num_classes:
        parts.replace_head(model, num_classes)
    return model


def load(path: Path, on_device: torch.device) -> Checkpoint:
    """A checkpoint ready to predict with (search.predict)."""
    saved = read(path, on_device)
    try:
        trial_config = config.from_dict(saved["config"], source=str(path))
        image_shape = tuple(saved["image_shape"])
        model = models.build(
            trial_config.model,
            num_classes=len(saved["classes"]),
            image_shape=trial_config.input_shape(image_shape),
            **trial_config.model_args,
        )
        model.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise UsageError(f"{path} is not a checkpoint written by search.train ({error})") from None
    return Checkpoint(
        model=model.to(on_device).eval(),
        config=trial_config,
        classes=tuple(saved["classes"]),
        image_shape=image_shape,
        preprocess=Preprocess.build(saved["normalization"], on_device, trial_config.image_size),
        metrics=saved["metrics"],
    )
