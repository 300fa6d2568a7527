"""StudySettings: how a study is to be run, one typed value. search.run parses and checks it
once, records it on the study (one user attribute per field), and every other command and
worker reads it back as it is; nothing is recorded until all of it is valid."""

import dataclasses
import functools
from typing import Annotated, Any, Literal

from annotated_types import Interval

from registry import NonNegativeInt, PositiveInt, UsageError, describe_problem
from search.training import COMPILE_MODES
from search.tuning import samplers

# Study seeds leave room below 2**32 (numpy's and Optuna's limit) for the offsets that workers
# add: one per trial and 7919 per slot (study.open_for_worker).
MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class StudySettings:
    # Fixed when the study is created: trials run under others would not be comparable.
    space: str
    dataset: str
    epochs: PositiveInt
    objectives: str = "accuracy"  # comma-separated study.OBJECTIVES names, accuracy first
    classes: list[str] = dataclasses.field(default_factory=list)
    init_from: str = ""
    fixed_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    # How to run it; the latest search.run sets them, workers read them.
    trials: PositiveInt = 100
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: Annotated[int, Interval(ge=0, le=MAX_SEED)] = 0
    space_module: str | None = None
    heartbeat_interval: PositiveInt = 60
    grace_period: PositiveInt = 180
    compile: Literal[("", *COMPILE_MODES)] = ""  # torch.compile's mode ("": not compiled)
    checkpoint_dir: str = ""  # where trials checkpoint every epoch ("": they do not)
    keep_checkpoints: NonNegativeInt = 0  # the top K complete trials' checkpoints stay

    def to_attrs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fixed(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in FIXED}


FIXED = ("space", "dataset", "classes", "init_from", "epochs", "objectives", "fixed_params")
FIELDS = tuple(field.name for field in dataclasses.fields(StudySettings))
# Settings added since the first studies were made, with what those studies mean by them.
LATER = {"compile": "", "classes": [], "init_from": "", "fixed_params": {},
         "checkpoint_dir": "", "keep_checkpoints": 0}  # fmt: skip


def upgraded(recorded: dict[str, Any]) -> dict[str, Any]:
    """Settings as an older version recorded them, in this version's terms: `compile` was
    on or off (a bool) before it named torch.compile's mode."""
    if isinstance(recorded.get("compile"), bool):
        return {**recorded, "compile": "default" if recorded["compile"] else ""}
    return recorded


def flag_name(setting: str) -> str:
    """The search.run flag that sets a setting: fixed_params is --fix, the rest by name."""
    return "--fix" if setting == "fixed_params" else "--" + setting.replace("_", "-")


def checked(values: dict[str, Any], source: str = "") -> StudySettings:
    """StudySettings from plain values, every one checked (types, ranges, names in their
    registries); the first problem as one UsageError line, prefixed with `source` (a
    recorded study's name), else naming the flag that gave the value."""
    import pydantic

    from search.tuning import study  # the objectives' names live with the study

    try:
        settings = _adapter().validate_python(dict(values))
        samplers.SAMPLERS[settings.sampler]
        samplers.PRUNERS[settings.pruner]
        study.parse_objectives(settings.objectives)
        if len(settings.classes) == 1:
            raise UsageError("'classes' names one class; a classifier needs two or more")
    except pydantic.ValidationError as error:
        shown_as = (lambda field: f"setting '{field}'") if source else flag_name
        raise UsageError(f"{source}{describe_problem(error, '', shown_as)}") from None
    except UsageError as error:
        raise UsageError(f"{source}{error}") from None
    return settings


@functools.cache
def _adapter():
    """pydantic's checker of StudySettings, built on first use (--help imports no pydantic)."""
    import pydantic

    return pydantic.TypeAdapter(StudySettings)
