"""Checkpoints that describe themselves: weights plus everything needed to rebuild and use them."""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from search.config import TrialConfig


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
