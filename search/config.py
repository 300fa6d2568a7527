"""TrialConfig: the complete, serialisable description of one training run, and its YAML form."""

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

import models
from search import augment, data, optim
from search.errors import UsageError


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """Everything that changes training. A space chooses these values; the trainer reads them.
    `*_args` hold the chosen function's own knobs (see the registries in models/, search/optim.py
    and search/augment.py); `augment` maps augmentation name -> its arguments, applied in order."""

    model: str
    model_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "sgd"
    optimizer_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    lr: float = 0.1
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    schedule_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch_size: int = 512
    epochs: int = 10
    augment: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    label_smoothing: float = 0.0
    grad_clip_norm: float = 0.0  # max global gradient norm; 0 turns clipping off
    seed: int = 0
    dataset: str = "cifar10"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrialConfig":
        return from_dict({**self.to_dict(), **changes})


# Field name -> its plain type (dict, float, int or str).
FIELD_TYPES = {f.name: typing.get_origin(f.type) or f.type for f in dataclasses.fields(TrialConfig)}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check one field's type; YAML 1.1 reads `1e-3` as a string, so numbers may come as text."""
    kind = FIELD_TYPES[name]
    if kind is dict and isinstance(value, Mapping):
        return {str(k): dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
    if kind is float and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number):
            return number
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    raise UsageError(f"{source}: '{name}' must be a {kind.__name__}, not {value!r}")


def from_dict(values: Mapping[str, Any], source: str = "config") -> TrialConfig:
    """Build and validate a TrialConfig; unknown or mistyped fields raise a UsageError."""
    unknown = sorted(set(values) - set(FIELD_TYPES))
    if unknown:
        raise UsageError(
            f"{source}: unknown field {', '.join(map(repr, unknown))}; "
            f"known fields: {', '.join(FIELD_TYPES)}"
        )
    if "model" not in values:
        raise UsageError(f"{source}: the field 'model' is required")
    config = TrialConfig(**{name: _coerce(name, v, source) for name, v in values.items()})
    validate(config, source)
    return config


def validate(config: TrialConfig, source: str = "config") -> None:
    """Names must exist in their registries and take the given arguments; ranges must make sense."""
    for field, limit in (("batch_size", 1), ("epochs", 1)):
        if getattr(config, field) < limit:
            raise UsageError(f"{source}: '{field}' must be at least {limit}")
    for field in ("lr", "weight_decay", "label_smoothing", "grad_clip_norm"):
        if getattr(config, field) < 0:
            raise UsageError(f"{source}: '{field}' must not be negative")
    if config.label_smoothing >= 1:
        raise UsageError(f"{source}: 'label_smoothing' must be below 1")
    try:
        models.MODELS.check_arguments(config.model, config.model_args)
        optim.OPTIMIZERS.check_arguments(config.optimizer, config.optimizer_args)
        optim.SCHEDULES.check_arguments(config.schedule, config.schedule_args)
        for name, arguments in config.augment.items():
            augment.AUGMENTATIONS.check_arguments(name, arguments or {})
        data.DATASETS[config.dataset]
    except UsageError as error:
        raise UsageError(f"{source}: {error}") from None


# How a config file is written, by format name: YAML for people, JSON for programs.
WRITERS = {
    "yaml": lambda document: yaml.safe_dump(document, sort_keys=False),
    "json": lambda document: json.dumps(document, indent=2) + "\n",
}


def write_file(
    path: Path,
    config: TrialConfig,
    provenance: Mapping[str, Any] | None = None,
    file_format: str = "yaml",
) -> None:
    """The config's fields at the top level; where it came from under `provenance`."""
    document = config.to_dict()
    if provenance:
        document["provenance"] = dict(provenance)
    path.write_text(WRITERS[file_format](document))


def read_file(path: Path) -> tuple[TrialConfig, dict[str, Any]]:
    """Read a config file written by write_file (or by hand), YAML or JSON (JSON is YAML):
    (config, provenance)."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"cannot read config file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path}: expected a mapping of config fields")
    provenance = document.pop("provenance", None) or {}
    return from_dict(document, source=str(path)), provenance
