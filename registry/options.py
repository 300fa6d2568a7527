"""Option groups: the flags of one concern as a frozen dataclass defined beside the code that
uses them, each field a flag whose default and help are written once, in the field. A group
adds itself to a command's parser as an argparse group (so that --help shows it, as timm's
train.py groups its flags), is built from the parsed values, checks itself, and says what it
contributes to a study's settings and to a run's options (as Ray Tune's TuneConfig, RunConfig
and FailureConfig each hold and check one concern)."""

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from registry import UsageError

G = TypeVar("G", bound="OptionGroup")


def flag(default: Any, help: str, **argparse_options: Any) -> Any:
    """A group's field that is the flag --NAME (its name, dashed): its default, its help, and
    argparse's other options for it (type, metavar, choices, nargs, const)."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_options})


def check_positive(values: Mapping[str, Any], *names: str) -> None:
    """Refuse a zero, negative or NaN value for any of `names` (flags by their dest names);
    None means unset."""
    for name in names:
        value = values[name]
        if value is not None and not value > 0:  # NaN compares false both ways
            raise UsageError(f"--{name.replace('_', '-')} must be positive, not {value}")


class OptionGroup:
    """Base of a frozen dataclass of flags (its fields made with `flag`)."""

    title: ClassVar[str]
    description: ClassVar[str | None] = None

    @classmethod
    def add_to(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(cls.title, cls.description)
        for field in dataclasses.fields(cls):
            options = dict(field.metadata)
            if isinstance(field.default, bool):
                options.setdefault("action", "store_true")
            group.add_argument(
                "--" + field.name.replace("_", "-"), dest=field.name, default=field.default,
                **options,
            )  # fmt: skip

    @classmethod
    def of(cls: type[G], given: Mapping[str, Any]) -> G:
        """The group as `given` (every flag's value, by its dest name) holds it."""
        return cls(**{field.name: given[field.name] for field in dataclasses.fields(cls)})

    def check(self, given: Mapping[str, Any]) -> None:
        """Refuse what cannot run, in one UsageError line; `given` holds every flag's value,
        for a check that depends on another group's."""

    def settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """What the group sets of the study's settings (StudySettings fields)."""
        return {}

    def run_options(self) -> dict[str, Any]:
        """What the group sets of this run's options (search.run's RunOptions fields)."""
        return {}
