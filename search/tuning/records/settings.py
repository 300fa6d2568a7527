"""StudySettings: how a study is to be run, one typed value. search.run parses and checks it
once, records it on the study (one user attribute per field), and every other command and
worker reads it back as it is; nothing is recorded until all of it is valid."""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal

from registry import NonNegativeInt, PositiveInt, Seed, UsageError, describe_problem
from search.training import COMPILE_MODES

# --objectives name -> (direction, the metric's name in the study and the dashboard).
OBJECTIVES = {
    "accuracy": ("maximize", "val_accuracy"),
    "params": ("minimize", "param_count"),
    "latency": ("minimize", "latency_ms"),  # milliseconds per batch, forward only
}
ObjectiveName = Literal[tuple(OBJECTIVES)]


@dataclasses.dataclass(frozen=True)
class StudySettings:
    # Fixed when the study is created: trials run under others would not be comparable.
    space: str
    dataset: str
    epochs: PositiveInt
    objectives: tuple[ObjectiveName, ...] = ("accuracy",)  # accuracy first, then any others
    # --scheduler pbt (pbt.py): a population of this many members, exploiting and exploring
    # every pbt_interval epochs ("" and 0s: a search of independent trials)
    scheduler: str = ""  # a name of strategy.SCHEDULERS
    population: NonNegativeInt = 0
    pbt_interval: NonNegativeInt = 0
    classes: list[str] = dataclasses.field(default_factory=list)
    init_from: str = ""
    fixed_params: dict[str, Any] = dataclasses.field(default_factory=dict)
    # How to run it; the latest search.run sets them, workers read them.
    trials: PositiveInt = 100
    sampler: str = "tpe"
    pruner: str = "hyperband"
    seed: Seed = 0
    space_module: str | None = None
    heartbeat_interval: PositiveInt = 60
    grace_period: PositiveInt = 180
    storage_patience: NonNegativeInt = 1800  # seconds a worker waits for a lost storage (0: ever)
    compile: Literal[("", *COMPILE_MODES)] = ""  # torch.compile's mode ("": not compiled)
    checkpoint_dir: str = ""  # where trials checkpoint every epoch ("": they do not)
    # Whose checkpoints: drawn when the study is created, so that its folder under
    # checkpoint_dir is its own, not another study's of the same name (in another storage) or
    # of a name that reads the same as a path ("a/b", "a_b"). "": a study made before it.
    checkpoint_key: str = ""
    keep_checkpoints: NonNegativeInt = 0  # the top K complete trials' checkpoints stay
    epoch_budget: NonNegativeInt = 0  # stop once trials have trained this many epochs (0: no limit)
    pause_pruned: bool = False  # pruned trials pause, and continue when their rung promotes them
    keep_paused: NonNegativeInt = 20  # paused trials whose checkpoints stay, the most promising
    thaw: str = "rung"  # how a rung ranks its trials to promote a paused one (continuation.py)
    # Set when the study is created from an earlier one (--warm-start-from, transfer.py): its
    # name, and the box of its best configs that every trial suggests inside.
    warm_start_from: str = ""
    search_box: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # With --warm-start-by prior, its best configs as a prior a share of trials is drawn from
    # (prior.py), in place of the box
    warm_start_prior: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_attrs(self) -> dict[str, Any]:
        """The settings as the study's (JSON) user attributes hold them: tuples as lists."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}  # fmt: skip

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[objective][0] for objective in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        return [OBJECTIVES[objective][1] for objective in self.objectives]

    def fixed(self) -> dict[str, Any]:
        """The settings fixed when the study was created, as its attributes hold them."""
        attrs = self.to_attrs()
        return {key: attrs[key] for key in FIXED}


FIXED = ("space", "dataset", "classes", "init_from", "epochs", "objectives", "fixed_params",
         "scheduler", "population", "pbt_interval")  # fmt: skip
FIELDS = tuple(field.name for field in dataclasses.fields(StudySettings))
# Drawn or derived when the study is created, and kept as they were when it is resumed.
BORN = ("checkpoint_key", "warm_start_from", "search_box", "warm_start_prior")
# Settings added since the first studies were made, with what those studies mean by them.
LATER = {"compile": "", "classes": [], "init_from": "", "fixed_params": {},
         "checkpoint_dir": "", "keep_checkpoints": 0, "epoch_budget": 0, "pause_pruned": False,
         "keep_paused": 20, "storage_patience": 1800, "checkpoint_key": "",
         "warm_start_from": "", "search_box": {}, "scheduler": "", "population": 0,
         "pbt_interval": 0, "thaw": "rung", "warm_start_prior": []}  # fmt: skip


def upgraded(recorded: dict[str, Any]) -> dict[str, Any]:
    """Settings as an older version recorded them, in this version's terms: `compile` was
    on or off (a bool) before it named torch.compile's mode, and `objectives` one
    comma-separated text before it was a list of names."""
    recorded = dict(recorded)
    if isinstance(recorded.get("compile"), bool):
        recorded["compile"] = "default" if recorded["compile"] else ""
    if isinstance(recorded.get("objectives"), str):
        recorded["objectives"] = recorded["objectives"].split(",")
    return recorded


def parse_objectives(given: str | Sequence[str]) -> tuple[str, ...]:
    """search.run's --objectives 'accuracy,params' -> ('accuracy', 'params'); a sequence of
    names (from search.api) as it is."""
    if not isinstance(given, str):
        return tuple(given)
    return tuple(name.strip() for name in given.split(","))


def flag_name(setting: str) -> str:
    """The search.run flag that sets a setting: fixed_params is --fix, the rest by name."""
    return "--fix" if setting == "fixed_params" else "--" + setting.replace("_", "-")


def as_flag(setting: str, value: object) -> str:
    """A recorded setting as the search.run flag that gave it: `--fix depth=2,width=64`."""
    if isinstance(value, dict):
        value = ",".join(f"{name}={item}" for name, item in value.items())
    elif isinstance(value, list | tuple):
        value = ",".join(map(str, value))
    return f"{flag_name(setting)} {value}"


def check_objectives(chosen: tuple[str, ...]) -> None:
    """Known names, accuracy first, each once."""
    unknown = set(chosen) - set(OBJECTIVES)
    if unknown or not chosen or chosen[0] != "accuracy" or len(set(chosen)) != len(chosen):
        raise UsageError(
            f"--objectives must be accuracy, optionally followed by any of "
            f"{', '.join(n for n in OBJECTIVES if n != 'accuracy')} (comma-separated), "
            f"not '{','.join(chosen)}'"
        )


def checked(
    values: dict[str, Any], source: str = "", also: Sequence[Callable[[StudySettings], None]] = ()
) -> StudySettings:
    """StudySettings from plain values, every one checked (types, ranges, names, and `also`'s
    checks); the first problem as one UsageError line, prefixed with `source` (a recorded
    study's name), else naming the flag that gave the value."""
    import pydantic

    try:
        settings = _adapter().validate_python(dict(values))
        check_objectives(settings.objectives)
        if len(settings.classes) == 1:
            raise UsageError("'classes' names one class; a classifier needs two or more")
        for check in also:  # the strategy's (strategies/strategy.py), which this room is below
            check(settings)
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
