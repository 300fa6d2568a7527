"""Checkpoints that describe themselves: weights plus everything needed to rebuild and use them."""

import dataclasses
import functools
import json
import pickle
import warnings
from collections.abc import Sequence
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


@dataclasses.dataclass(frozen=True)
class SavedNetwork:
    """What search.train saves beside a trained network, read once into this record that every
    reader shares (fine-tuning, its search's context, prediction): how to build the network
    (its config), its weights, the classes it tells apart, the images it learnt from (their
    shape before any resize, their normalisation) and its metrics. The file rebuilds the
    network without the study (models.build with the config)."""

    config: TrialConfig
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # of the dataset it was trained on, before any resize
    normalization: dict[str, list[float]]  # per-channel mean and std of its training images
    weights: dict[str, torch.Tensor]
    metrics: dict[str, Any]

    @classmethod
    def of(
        cls,
        model: nn.Module,
        normalization: dict[str, list[float]],
        trial_config: TrialConfig,
        classes: Sequence[str],
        image_shape: Sequence[int],
        metrics: dict[str, Any] | None = None,
    ) -> "SavedNetwork":
        """A trained network and what it was trained as, ready to write."""
        return cls(trial_config, tuple(classes), tuple(image_shape), normalization,
                   model.state_dict(), metrics or {})  # fmt: skip

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """What the network takes: the images' shape, or the config's resize of it."""
        return self.config.input_shape(self.image_shape)

    def to_dict(self) -> dict[str, Any]:
        """The file's form: plain tensors and values (torch.load(weights_only=True) reads it)."""
        return {
            "state_dict": self.weights,
            "config": self.config.to_dict(),
            "classes": list(self.classes),
            "image_shape": list(self.image_shape),
            "normalization": self.normalization,
            "metrics": self.metrics,
        }


def write(path: Path, saved: SavedNetwork) -> None:
    """Written atomically: an interrupted save leaves the old checkpoint or none."""
    files.write_through(path, lambda out: torch.save(saved.to_dict(), out))


def write_safetensors(folder: Path, saved: SavedNetwork) -> None:
    """model.safetensors and config.json beside them, for loading the weights elsewhere: the
    fields of timm's pretrained_cfg (input_size, mean and std in [0, 1] units, the class
    names, bilinear resizing, no crop) and how to build the network (models.build)."""
    from safetensors.torch import save

    tensors = {name: value.detach().cpu().contiguous().clone()
               for name, value in saved.weights.items()}  # fmt: skip
    files.write_through(folder / "model.safetensors", lambda out: out.write(save(tensors)))
    described = {
        "architecture": saved.config.model,
        "model_args": saved.config.model_args,
        "num_classes": len(saved.classes),
        "label_names": list(saved.classes),
        "input_size": list(saved.input_shape),
        "mean": saved.normalization["mean"],
        "std": saved.normalization["std"],
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


# What Trainer.state_dict holds and a trained network's checkpoint does not
TRAINING_STATE = {"epoch", "model", "optimizer", "schedule"}


def read(path: Path | str) -> SavedNetwork:
    """The checkpoint at `path`, its weights on the CPU, read from the file once for as long
    as the file stays as it is (a fine-tuning search's trials all start from it), or one
    UsageError line when it is not a checkpoint of search.train."""
    try:
        found = Path(path).stat()
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}") from None
    except OSError as error:
        raise UsageError(f"cannot read checkpoint {path}: {error.strerror}") from None
    return _read(str(path), found.st_mtime_ns, found.st_size)


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int, size: int) -> SavedNetwork:
    try:
        with warnings.catch_warnings():  # "looks like a TorchScript archive": said below
            warnings.simplefilter("ignore", UserWarning)
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:  # a folder, or a file that cannot be read
        raise UsageError(f"cannot read checkpoint {path}: {error.strerror}") from None
    except pickle.UnpicklingError:  # not torch's format, or objects no checkpoint of ours holds
        raise UsageError(f"{path} is not a checkpoint written by search.train") from None
    except Exception as error:  # torch's weights-only reader fails on garbage in many ways
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "TorchScript" in reason:  # torch's advice (weights_only=False) is not ours to give
            reason = "it is a TorchScript module, saved by torch.jit.save"
        raise UsageError(f"{path} is not a checkpoint written by search.train ({reason})") from None
    if isinstance(saved, dict) and TRAINING_STATE <= set(saved):
        raise UsageError(
            f"{path} is the state of a training in progress (a search trial's checkpoint, or "
            "search.train's own), not a trained network: use the checkpoint.pt search.train "
            "writes when it ends (python -m search.export, then search.train, for a trial)"
        )
    if not isinstance(saved, dict) or not {"state_dict", "config", "classes"} <= set(saved):
        raise UsageError(f"{path} is not a checkpoint written by search.train")
    try:
        return SavedNetwork(
            config=config.from_dict(saved["config"], source=path),
            classes=tuple(saved["classes"]),
            image_shape=tuple(saved["image_shape"]),
            normalization=saved["normalization"],
            weights=saved["state_dict"],
            metrics=saved.get("metrics", {}),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{path} is not a checkpoint written by search.train ({error})") from None


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
        trial_config.model, num_classes=len(saved.classes), image_shape=image_shape,
        init=trial_config.init, **trial_config.model_args,
    )  # fmt: skip
    problem = misfit(model, saved.weights)
    if problem:
        raise UsageError(f"checkpoint {path} does not fit {trial_config.model}: {problem}")
    model.load_state_dict(saved.weights)
    if len(saved.classes) != num_classes:
        parts.replace_head(model, num_classes)
    return model


def load(path: Path, on_device: torch.device) -> Checkpoint:
    """A checkpoint ready to predict with (search.predict)."""
    saved = read(path)
    model = models.build(
        saved.config.model, num_classes=len(saved.classes), image_shape=saved.input_shape,
        **saved.config.model_args,
    )  # fmt: skip
    problem = misfit(model, saved.weights)
    if problem:
        raise UsageError(f"{path} does not fit the network its config describes: {problem}")
    model.load_state_dict(saved.weights)
    return Checkpoint(
        model=model.to(on_device).eval(),
        config=saved.config,
        classes=saved.classes,
        image_shape=saved.image_shape,
        preprocess=Preprocess.build(saved.normalization, on_device, saved.config.image_size),
        metrics=saved.metrics,
    )
