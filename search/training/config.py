"""TrialConfig: the complete, serialisable description of one training run, checked once where
it is born, and its YAML form."""

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from registry import MAX_SEED, UsageError, files
from search.training import legacy


@dataclasses.dataclass(frozen=True)
class SecondPhase:
    """Training switches part-way, after `start_fraction` of the epochs, to a fresh optimizer
    and schedule: report 002's Adam then SGD, or report 000's masked pre-training then crops
    (the same optimizer, another augmentation). What it leaves as None it takes from the first
    phase when the config is checked (`resolved`): weight decay, schedule, augmentation, and
    the schedule's arguments while it keeps the first phase's schedule. Its optimizer's
    arguments are its own (none by default)."""

    start_fraction: float
    optimizer: str
    lr: float
    optimizer_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    weight_decay: float | None = None
    schedule: str | None = None
    schedule_args: dict[str, Any] | None = None
    augment: dict[str, dict[str, Any]] | None = None

    def resolved(self, first: "TrialConfig") -> "SecondPhase":
        """Every field given: what it leaves out, as the first phase has it."""
        schedule = self.schedule or first.schedule
        inherited_args = first.schedule_args if schedule == first.schedule else {}
        return dataclasses.replace(
            self,
            weight_decay=first.weight_decay if self.weight_decay is None else self.weight_decay,
            schedule=schedule,
            schedule_args=inherited_args if self.schedule_args is None else self.schedule_args,
            augment=first.augment if self.augment is None else self.augment,
        )


@dataclasses.dataclass(frozen=True)
class Change:
    """From `start_fraction` of the epochs on, training goes on with these values in place of
    its phase's (None: as they were): the same optimizer, its state and its schedule's place
    kept, the schedule's rates scaled to the new learning rate. What population-based training
    changes part-way through a run (search/tuning/strategies/pbt.py), and what search.train replays. A
    second phase starts from its own values; a change applies within the phase it falls in."""

    start_fraction: float
    lr: float | None = None
    weight_decay: float | None = None
    augment: dict[str, dict[str, Any]] | None = None


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """Everything that changes training. A space chooses these values; the trainer reads them.
    A config is checked once, where it is born (validate: a file, a trial's record, what a
    space returned, replace()), and is the same thing everywhere after.
    `*_args` hold the chosen function's own knobs (see the registries in models/ and
    search/training/optim.py and augment.py); `augment` maps augmentation name -> its
    arguments, applied in order. A schedule's lengths are fractions of the phase it runs in
    (optim.py), so that the same config at other epochs runs the same curve stretched.
    `param_groups` and `freeze` name parts of the network by rule (parameters.py): their own
    lr and weight-decay multipliers, and the epochs they train before they freeze (0: frozen
    throughout; a count, not a share of the run: airbench's whitening bias trains 3 epochs
    however long the run)."""

    model: str
    model_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    optimizer: str = "sgd"
    optimizer_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    lr: float = 0.1
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    schedule_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    warmup_fraction: float = 0.0  # linear warm-up over this fraction of the (first phase's) steps
    second_phase: SecondPhase | None = None
    changes: list[Change] = dataclasses.field(default_factory=list)  # by start_fraction
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
        """The config with `changes`, checked (a second phase may come as a mapping)."""
        return validate(dataclasses.replace(self, **changes))

    def input_shape(self, image_shape: Sequence[int]) -> tuple[int, int, int]:
        """The shape the network sees: the dataset's images', or resized to image_size."""
        channels, height, width = image_shape
        size = self.image_size
        return (channels, size, size) if size else (channels, height, width)


# Field name -> its plain type (dict, float, int or str); second_phase, SecondPhase; changes,
# Change (a list of them).
NESTED = {"second_phase": SecondPhase, "changes": Change}
FIELD_TYPES = {
    f.name: NESTED.get(f.name) or typing.get_origin(f.type) or f.type
    for f in dataclasses.fields(TrialConfig)
}


def _plain_type(annotation: Any) -> type:
    """dict[str, Any] -> dict, float | None -> float."""
    if isinstance(annotation, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return typing.get_origin(annotation) or annotation


# A second phase's fields -> their plain types; those that may be None (the first phase's).
SECOND_PHASE_TYPES = {f.name: _plain_type(f.type) for f in dataclasses.fields(SecondPhase)}
SECOND_PHASE_OPTIONAL = {f.name for f in dataclasses.fields(SecondPhase)
                         if isinstance(f.type, types.UnionType)}  # fmt: skip


def _coerce_value(kind: type, value: Any) -> Any:
    """`value` as a plain `kind`, or _WRONG. YAML 1.1 reads `1e-3` as text, so numbers may come
    as text."""
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
    return _WRONG


_WRONG = object()
# What each plain type is called in a refusal ("a float" would admit inf and nan)
KIND_NAMES = {float: "a finite number", int: "a whole number", str: "text",
              list: "a list of names", dict: "a mapping"}  # fmt: skip


def _coerce(name: str, value: Any, source: str) -> Any:
    """Check one field's type."""
    kind = FIELD_TYPES[name]
    if kind is SecondPhase:
        return second_phase_from(value, source)
    if kind is Change:
        return changes_from(value, source)
    coerced = _coerce_value(kind, value)
    if coerced is _WRONG:
        raise UsageError(f"{source}: '{name}' must be {KIND_NAMES[kind]}, not {value!r}")
    return coerced


def second_phase_from(value: Any, source: str = "config") -> SecondPhase | None:
    """A second phase from its YAML form (a mapping; empty or null: none)."""
    if value is None or isinstance(value, SecondPhase):
        return value
    if not isinstance(value, Mapping):
        raise UsageError(f"{source}: 'second_phase' must be a mapping, not {value!r}")
    if not value:
        return None
    unknown = sorted(set(value) - set(SECOND_PHASE_TYPES))
    missing = [key for key in ("start_fraction", "optimizer", "lr") if key not in value]
    if unknown or missing:
        raise UsageError(
            f"{source}: 'second_phase' needs start_fraction, optimizer and lr, and may hold "
            f"{', '.join(SECOND_PHASE_TYPES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    fields = _coerced_fields(value, SECOND_PHASE_TYPES, SECOND_PHASE_OPTIONAL, "second_phase",
                             source)  # fmt: skip
    return SecondPhase(**fields)


def _coerced_fields(
    value: Mapping[str, Any], kinds: dict[str, type], optional: set[str], path: str, source: str
) -> dict[str, Any]:
    """A nested field's mapping (known keys only), each value as its plain kind; None only
    where it is `optional`."""
    fields = {}
    for key, item in value.items():
        coerced = None if item is None else _coerce_value(kinds[key], item)
        if coerced is _WRONG or (coerced is None and key not in optional):
            raise UsageError(f"{source}: '{path}.{key}' must be {KIND_NAMES[kinds[key]]}")
        fields[key] = coerced
    return fields


CHANGE_TYPES = {f.name: _plain_type(f.type) for f in dataclasses.fields(Change)}


def changes_from(value: Any, source: str = "config") -> list[Change]:
    """Changes from their YAML form: a list of mappings, each with its start_fraction."""
    if value is None:
        return []
    if isinstance(value, Mapping) or isinstance(value, str) or not isinstance(value, Sequence):
        raise UsageError(f"{source}: 'changes' must be a list of mappings, not {value!r}")
    changes = []
    for number, item in enumerate(value):
        if isinstance(item, Change):
            changes.append(item)
            continue
        path = f"changes[{number}]"
        if not isinstance(item, Mapping) or "start_fraction" not in item:
            raise UsageError(f"{source}: '{path}' must be a mapping with a start_fraction")
        unknown = sorted(set(item) - set(CHANGE_TYPES))
        if unknown:
            raise UsageError(
                f"{source}: '{path}' may hold {', '.join(CHANGE_TYPES)}; unknown: "
                f"{', '.join(unknown)}"
            )
        optional = set(CHANGE_TYPES) - {"start_fraction"}
        changes.append(Change(**_coerced_fields(item, CHANGE_TYPES, optional, path, source)))
    return changes


def from_dict(values: Mapping[str, Any], source: str = "config") -> TrialConfig:
    """Build and validate a TrialConfig from its plain form (a file, a trial's record, a
    checkpoint's); unknown or mistyped fields raise a UsageError. What an earlier version
    wrote is read in this version's terms (legacy.py)."""
    unknown = sorted(set(values) - set(FIELD_TYPES))
    if unknown:
        raise UsageError(
            f"{source}: unknown field {', '.join(map(repr, unknown))}; "
            f"known fields: {', '.join(FIELD_TYPES)}"
        )
    if "model" not in values:
        raise UsageError(f"{source}: the field 'model' is required")
    values = legacy.upgraded_config(values, source)
    config = TrialConfig(**{name: _coerce(name, v, source) for name, v in values.items()})
    return validate(config, source)


def validate(config: TrialConfig, source: str = "config") -> TrialConfig:
    """Every field, nested ones included, checked for type and range against what the
    function it configures accepts (registry.check_arguments: its signature's annotations):
    names must exist in their registries and take the given arguments. The config with its
    values as those functions take them and its second phase resolved; the first problem as
    one UsageError line that names its whole path (`model_args.width`)."""
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
        }
        checked["changes"] = _checked_changes(changes_from(config.changes))
        second = second_phase_from(config.second_phase)
        if second is not None:
            checked["second_phase"] = _checked_second_phase(
                second.resolved(dataclasses.replace(config, **checked))
            )
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


def _checked_changes(changes: list[Change]) -> list[Change]:
    """Changes in the order they start, each within the run, its values as the first phase's
    are checked."""
    starts = [change.start_fraction for change in changes]
    if any(not 0 < start < 1 for start in starts) or starts != sorted(set(starts)):
        raise UsageError("'changes' must start at fractions in (0, 1), each later than the last")
    for number, change in enumerate(changes):
        for field in ("lr", "weight_decay"):
            if (getattr(change, field) or 0) < 0:
                raise UsageError(f"'changes[{number}].{field}' must not be negative")
    return [
        change if change.augment is None else dataclasses.replace(
            change, augment=_checked_augment(change.augment, f"changes[{number}].augment")
        )
        for number, change in enumerate(changes)
    ]  # fmt: skip


def _checked_second_phase(second: SecondPhase) -> SecondPhase:
    """A resolved second phase with its fields checked as the first phase's are."""
    from search.training import optim

    if not 0 < second.start_fraction < 1 or second.lr < 0:
        raise UsageError("'second_phase.start_fraction' must be in (0, 1) and its lr >= 0")
    if second.weight_decay < 0:
        raise UsageError("'second_phase.weight_decay' must not be negative")
    return dataclasses.replace(
        second,
        optimizer_args=optim.OPTIMIZERS.check_arguments(
            second.optimizer, second.optimizer_args, "second_phase.optimizer_args"
        ),
        schedule_args=optim.SCHEDULES.check_arguments(
            second.schedule, second.schedule_args, "second_phase.schedule_args"
        ),
        augment=_checked_augment(second.augment, "second_phase.augment"),
    )


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


def phases(config: TrialConfig) -> list[Phase]:
    """The (checked) config's one or two phases. The second takes over after start_fraction of
    the epochs, at least one epoch each."""
    first = Phase(
        1, config.epochs, config.optimizer, config.optimizer_args, config.lr,
        config.weight_decay, config.schedule, config.schedule_args, config.warmup_fraction,
        config.augment,
    )  # fmt: skip
    second = config.second_phase
    if second is None or config.epochs < 2:
        return [first]
    first_epochs = min(max(1, round(second.start_fraction * config.epochs)), config.epochs - 1)
    return [
        dataclasses.replace(first, epochs=first_epochs),
        Phase(
            first_epochs + 1,
            config.epochs - first_epochs,
            second.optimizer,
            second.optimizer_args,
            second.lr,
            second.weight_decay,
            second.schedule,
            second.schedule_args,
            0.0,
            second.augment,
        ),  # fmt: skip
    ]


def change_epoch(config: TrialConfig, change: Change) -> int:
    """The first epoch a change applies to: after start_fraction of the epochs, rounded, as a
    second phase starts (epochs + 1, never, in a run of one epoch)."""
    if config.epochs < 2:
        return config.epochs + 1
    return min(max(1, round(change.start_fraction * config.epochs)), config.epochs - 1) + 1


def phase_at(config: TrialConfig, epoch: int) -> Phase:
    """The phase that epoch `epoch` (from 1; 0 counts as the first) belongs to, with the
    changes made in it by then."""
    epoch = max(1, epoch)
    phase = [phase for phase in phases(config) if phase.first_epoch <= epoch][-1]
    for change in config.changes:
        if phase.first_epoch <= change_epoch(config, change) <= epoch:
            phase = dataclasses.replace(
                phase, **{field: getattr(change, field) for field in ("lr", "weight_decay",
                          "augment") if getattr(change, field) is not None},
            )  # fmt: skip
    return phase


def changes_at(config: TrialConfig, epoch: int) -> bool:
    """Whether a change starts at epoch `epoch` (from 1)."""
    return any(change_epoch(config, change) == epoch for change in config.changes)


def as_of(config: TrialConfig, epoch: int) -> TrialConfig:
    """What shaped a run's first `epoch` epochs: the config without the changes that start
    after them. A state saved after that epoch continues any config that agrees with its own
    here (a population-based trial goes on from its donor's)."""
    kept = [change for change in config.changes if change_epoch(config, change) <= epoch]
    return dataclasses.replace(config, changes=kept)


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


MAX_CONFIG_BYTES = 2**20  # an exported config with its provenance is about 2 KB


def read_file(path: Path) -> tuple[TrialConfig, dict[str, Any]]:
    """Read a config file written by write_file (or by hand), YAML or JSON (JSON is YAML):
    (config, provenance). One far larger than any config is refused before it is parsed: PyYAML
    took minutes and gigabytes over a 50 MB JSON file (issue 44)."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise UsageError(
                f"{path} is {size / 2**20:.0f} MiB; a config is a few hundred bytes (at most "
                f"{MAX_CONFIG_BYTES // 2**20} MiB are read): is it the right file?"
            )
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
