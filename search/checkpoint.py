"""Checkpoints that describe themselves: weights plus everything needed to rebuild and use them."""

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

import models
from search import config
from search.config import TrialConfig
from search.errors import UsageError


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


def load(path: Path, on_device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on the device, the checkpoint's contents) from a saved checkpoint."""
    try:
        saved = torch.load(path, map_location=on_device, weights_only=False)
        trial_config = config.from_dict(saved["config"], source=str(path))
        model = models.build(
            trial_config.model,
            num_classes=len(saved["classes"]),
            image_shape=trial_config.input_shape(saved["image_shape"]),
            **trial_config.model_args,
        )
        model.load_state_dict(saved["state_dict"])
    except FileNotFoundError:
        raise UsageError(f"no checkpoint at {path}") from None
    except (KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as error:
        raise UsageError(f"{path} is not a checkpoint written by search.train ({error})") from None
    return model.to(on_device).eval(), saved
