"""Checkpoints that describe themselves: weights plus everything needed to rebuild and use them."""

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

import models
from registry import UsageError
from search.training import config, evaluation, tta
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
    """The file rebuilds the model (models.build with the config) without opening the study."""
    torch.save(
        {
            "state_dict": model.state_dict(),
            "config": trial_config.to_dict(),
            "classes": list(classes),
            "image_shape": list(image_shape),
            "normalization": normalization,
            "metrics": metrics,
        },
        path,
    )


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


def load(path: Path, on_device: torch.device) -> Checkpoint:
    try:
        saved = torch.load(path, map_location=on_device, weights_only=False)
        trial_config = config.from_dict(saved["config"], source=str(path))
        image_shape = tuple(saved["image_shape"])
        model = models.build(
            trial_config.model,
            num_classes=len(saved["classes"]),
            image_shape=trial_config.input_shape(image_shape),
            **trial_config.model_args,
        )
        model.load_state_dict(saved["state_dict"])
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}") from None
    except (KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as error:
        raise UsageError(f"{path} is not a checkpoint written by search.train ({error})") from None
    return Checkpoint(
        model=model.to(on_device).eval(),
        config=trial_config,
        classes=tuple(saved["classes"]),
        image_shape=image_shape,
        preprocess=Preprocess.build(saved["normalization"], on_device, trial_config.image_size),
        metrics=saved["metrics"],
    )
