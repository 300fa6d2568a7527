"""TrialConfig: the complete, serialisable description of one training run, and its YAML form."""

import dataclasses
import json
import math
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from registry import UsageError, files


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """Everything that changes training. A space chooses these values; the trainer reads them.
    `*_args` hold the chosen function's own knobs (see the registries in models/ and
    search/training/optim.py and augment.py); `augment` maps augmentation name -> its
    arguments, applied in order.
    `second_phase`, if not empty, switches optimizer (and schedule) part-way (report 002's Adam
    then SGD): its `start_fraction` of the epochs, `optimizer`, `lr`, and optionally
    `optimizer_args`, `weight_decay`, `schedule`, `schedule_args` and `augment` (report 000's
    masked pre-training, then crop fine-tuning). `param_groups` and `freeze`
    name parts of the network by rule (parameters.py): their own lr and weight-decay
    multipliers, and the epochs they train before they freeze (0: frozen throughout)."""

    model: str
    model_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "sgd"
    optimizer_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    lr: float = 0.1
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    schedule_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    warmup_fraction: float = 0.0  # linear warm-up over this fraction of the (first phase's) steps
    second_phase: dict[str, Any] = dataclasses.field(default_factory=dict)
    init: str = "default"  # weight initialisation scheme (models/init.py)
    # rule -> {"lr_scale": x, "weight_decay_scale": y}; airbench: norm_biases 64x lr, 1/64 decay
    param_groups: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    freeze: dict[str, int] = dataclasses.field(default_factory=dict)  # rule -> epochs trained
    averaging: str = "none"  # weight averaging during training (averaging.py)
    averaging_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch_size: int = 512
    epochs: int = 10
    augment: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    label_smoothing: float = 0.0
    grad_clip_norm: float = 0.0  # max global gradient norm; 0 turns clipping off
    image_size: int = 0  # resize inputs to image_size x image_size on the device; 0 keeps them
    tta: str = "none"  # test-time augmentation when evaluating (tta.py)
    tta_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    dataset: str = "cifar10"
    # A subset of the dataset's classes, labelled 0.. in this order; empty: every class.
    classes: list[str] = dataclasses.field(default_factory=list)
    # A checkpoint written by search.train to start from (fine-tuning): the network is built
    # as it says and its weights loaded; a new head replaces its classifier when the class
    # count differs.
    init_from: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrialConfig":
        return from_dict({**self.to_dict(), **changes})

    def input_shape(self, image_shape: Sequence[int]) -> tuple[int, int, int]:
        """The shape the network sees: the dataset's images', or resized to image_size."""
        channels, height, width = image_shape
        size = self.image_size
        return (channels, size, size) if size else (channels, height, width)


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
    if kind is list and isinstance(value, Sequence) and not isinstance(value, str):
        if all(isinstance(item, str) for item in value):
            return list(value)
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
    return validate(config, source)


MAX_SEED = 2**32 - 1  # numpy's and Optuna's samplers take seeds below 2**32


def validate(config: TrialConfig, source: str = "config") -> TrialConfig:
    """Every field, nested ones included, checked for type and range against what the
    function it configures accepts (registry.check_arguments: its signature's annotations):
    names must exist in their registries and take the given arguments. The config with its
    values as those functions take them; the first problem as one UsageError line that names
    its whole path (`model_args.width`)."""
    for field, limit in (("batch_size", 1), ("epochs", 1), ("image_size", 0), ("seed", 0)):
        if getattr(config, field) < limit:
            raise UsageError(f"{source}: '{field}' must be at least {limit}")
    if config.seed > MAX_SEED:
        raise UsageError(f"{source}: 'seed' must be at most {MAX_SEED}, not {config.seed}")
    for field in ("lr", "weight_decay", "label_smoothing", "grad_clip_norm"):
        if getattr(config, field) < 0:
            raise UsageError(f"{source}: '{field}' must not be negative")
    for field in ("label_smoothing", "warmup_fraction"):
        if not 0 <= getattr(config, field) < 1:
            raise UsageError(f"{source}: '{field}' must be at least 0 and below 1")
    if len(config.classes) == 1:
        raise UsageError(f"{source}: 'classes' names one class; a classifier needs two or more")
    # The registries live beside torch: imported here, so that spaces build configs (and
    # `--help` and `--list-spaces` answer) without loading it.
    import models
    from search.training import averaging, data, optim, parameters, tta

    try:
        checked = {
            "model_args": models.MODELS.check_arguments(
                config.model, config.model_args, "model_args"
            ),
            "averaging_args": averaging.AVERAGING.check_arguments(
                config.averaging, config.averaging_args, "averaging_args"
            ),
            "tta_args": tta.TTA.check_arguments(config.tta, config.tta_args, "tta_args"),
            "optimizer_args": optim.OPTIMIZERS.check_arguments(
                config.optimizer, config.optimizer_args, "optimizer_args"
            ),
            "schedule_args": optim.SCHEDULES.check_arguments(
                config.schedule, config.schedule_args, "schedule_args"
            ),
            "augment": _checked_augment(config.augment, "augment"),
            "second_phase": _checked_second_phase(config),
        }
        models.INITIALIZERS[config.init]
        parameters.check(config.param_groups, config.freeze)
        data.DATASETS[config.dataset]
    except UsageError as error:
        raise UsageError(f"{source}: {error}") from None
    return dataclasses.replace(config, **checked)


def _checked_augment(spec: Mapping[str, Any], path: str) -> dict[str, dict[str, Any]]:
    """An `augment` mapping (augmentation name -> its arguments, or nothing), checked."""
    from search.training import augment

    checked = {}
    for name, arguments in spec.items():
        if arguments is not None and not isinstance(arguments, Mapping):
            raise UsageError(
                f"'{path}.{name}' must be a mapping of its arguments (or empty), not {arguments!r}"
            )
        checked[name] = augment.check_arguments(name, arguments or {}, f"{path}.{name}")
    return checked


def _checked_second_phase(config: TrialConfig) -> dict[str, Any]:
    """`second_phase` with its fields checked as the first phase's are."""
    from search.training import optim

    second = config.second_phase
    if not second:
        return {}
    _check_second_phase(second)
    checked = dict(second)
    for key in ("start_fraction", "lr", "weight_decay"):
        if key in second:
            checked[key] = float(second[key])
    # What phases() gives the second phase where it names none: no optimizer arguments, and
    # the first phase's schedule arguments while it keeps the first's schedule.
    optimizer_args = optim.OPTIMIZERS.check_arguments(
        second["optimizer"], second.get("optimizer_args", {}), "second_phase.optimizer_args"
    )
    schedule = second.get("schedule", config.schedule)
    schedule_args = optim.SCHEDULES.check_arguments(
        schedule,
        second.get("schedule_args", config.schedule_args if schedule == config.schedule else {}),
        "second_phase.schedule_args",
    )
    for key, value in (("optimizer_args", optimizer_args), ("schedule_args", schedule_args)):
        if key in second:
            checked[key] = value
    if "augment" in second:
        checked["augment"] = _checked_augment(second["augment"], "second_phase.augment")
    return checked


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training under one optimizer and schedule."""

    first_epoch: int  # 1-based
    epochs: int
    optimizer: str
    optimizer_args: dict[str, Any]
    lr: float
    weight_decay: float
    schedule: str
    schedule_args: dict[str, Any]
    warmup_fraction: float
    augment: dict[str, dict[str, Any]]


SECOND_PHASE_FIELDS = {
    "start_fraction": float, "optimizer": str, "lr": float, "optimizer_args": dict,
    "weight_decay": float, "schedule": str, "schedule_args": dict, "augment": dict,
}  # fmt: skip


def _check_second_phase(second: Mapping[str, Any]) -> None:
    unknown = sorted(set(second) - set(SECOND_PHASE_FIELDS))
    missing = [key for key in ("start_fraction", "optimizer", "lr") if key not in second]
    if unknown or missing:
        raise UsageError(
            f"'second_phase' needs start_fraction, optimizer and lr, and may hold "
            f"{', '.join(SECOND_PHASE_FIELDS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    for key, kind in SECOND_PHASE_FIELDS.items():
        value = second.get(key, kind())
        if kind is float:  # YAML 1.1 reads 1e-3 as text, as for the top-level fields
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = None
        if not isinstance(value, kind):
            raise UsageError(f"'second_phase.{key}' must be a {kind.__name__}")
    if not 0 < float(second["start_fraction"]) < 1 or float(second["lr"]) < 0:
        raise UsageError("'second_phase.start_fraction' must be in (0, 1) and its lr >= 0")
    if float(second.get("weight_decay", 0)) < 0:
        raise UsageError("'second_phase.weight_decay' must not be negative")


def phases(config: TrialConfig) -> list[Phase]:
    """The config's one or two phases. The second takes over after start_fraction of the epochs
    (at least one epoch each); what it leaves out it keeps from the first (the augmentation
    too), except the optimizer's and a new schedule's own arguments, which belong to the
    first's choices."""
    first = Phase(
        1, config.epochs, config.optimizer, config.optimizer_args, config.lr,
        config.weight_decay, config.schedule, config.schedule_args, config.warmup_fraction,
        config.augment,
    )  # fmt: skip
    second = config.second_phase
    if not second:
        return [first]
    _check_second_phase(second)
    if config.epochs < 2:
        return [first]
    split = round(float(second["start_fraction"]) * config.epochs)
    first_epochs = min(max(1, split), config.epochs - 1)
    schedule = second.get("schedule", config.schedule)
    default_schedule_args = config.schedule_args if schedule == config.schedule else {}
    return [
        dataclasses.replace(first, epochs=first_epochs),
        Phase(
            first_epochs + 1,
            config.epochs - first_epochs,
            second["optimizer"],
            dict(second.get("optimizer_args", {})),
            float(second["lr"]),
            float(second.get("weight_decay", config.weight_decay)),
            schedule,
            dict(second.get("schedule_args", default_schedule_args)),
            0.0,
            dict(second.get("augment", config.augment)),
        ),
    ]


def phase_at(config: TrialConfig, epoch: int) -> Phase:
    """The phase that epoch `epoch` (from 1; 0 counts as the first) belongs to."""
    return [phase for phase in phases(config) if phase.first_epoch <= max(1, epoch)][-1]


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
    """The config's fields at the top level; where it came from under `provenance`. Written
    atomically: an interrupted write leaves the old file or none."""
    document = config.to_dict()
    if provenance:
        document["provenance"] = dict(provenance)
    files.write_text(path, WRITERS[file_format](document))


def read_file(path: Path) -> tuple[TrialConfig, dict[str, Any]]:
    """Read a config file written by write_file (or by hand), YAML or JSON (JSON is YAML):
    (config, provenance)."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"cannot read config file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a text file in UTF-8 (a YAML or JSON config)") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path}: expected a mapping of config fields")
    provenance = document.pop("provenance", None) or {}
    if not isinstance(provenance, dict):
        raise UsageError(f"{path}: 'provenance' must be a mapping (study, trial, ...)")
    return from_dict(document, source=str(path)), provenance
