"""What every package of the project shares and nothing of ours underlies: name -> function
registries filled by decorators (models, spaces, optimizers, datasets, ...), the ranges their
arguments take, and UsageError and RunFailure, the exception types for what a person can cause
(the commands turn them into one stderr line and an exit code)."""

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Generic, TypeVar

from annotated_types import Ge, Gt, Interval

F = TypeVar("F", bound=Callable)

# The ranges of registered functions' arguments, in their signatures: pydantic checks a
# config's values against them before anything trains (check_arguments).
PositiveInt = Annotated[int, Gt(0)]
NonNegativeInt = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]
NonNegativeFloat = Annotated[float, Ge(0)]
Probability = Annotated[float, Interval(ge=0, le=1)]  # also any fraction that may reach 1
Rate = Annotated[float, Interval(ge=0, lt=1)]  # dropout, momentum, Adam's betas: below 1
Fraction = Annotated[float, Interval(gt=0, le=1)]  # a share of something: above 0, up to all
# Seeds, of a study and of a trial alike: numpy's and Optuna's samplers take them below 2**32.
# What is added to a study's seed (a trial's number, a worker's slot) wraps round (seed_plus).
MAX_SEED = 2**32 - 1
Seed = Annotated[int, Interval(ge=0, le=MAX_SEED)]


def seed_plus(seed: int, offset: int) -> int:
    """seed + offset, wrapped round into the seed range."""
    return (seed + offset) % (MAX_SEED + 1)


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what and what to do."""

    exit_code = 2


class RunFailure(UsageError):
    """What was asked was fine, but running it failed (a locked or unreachable database, trials
    that keep failing, a diverged training): exit code 1 instead of a usage error's 2."""

    exit_code = 1


class Registry(Generic[F]):
    """A dict filled by `@registry.register("name")`; unknown names raise a UsageError."""

    def __init__(self, kind: str, supplied: tuple[str, ...] = ()):
        """`supplied`: leading parameters the caller fills in, never taken from a config."""
        self.kind = kind
        self.supplied = supplied
        self._entries: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def add(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = fn
            return fn

        return add

    def __getitem__(self, name: str) -> F:
        try:
            return self._entries[name]
        except KeyError:
            raise UsageError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def accepted_arguments(self, name: str) -> list[str]:
        """The arguments a config may give `name`: its parameters less the supplied ones."""
        return [p for p in inspect.signature(self[name]).parameters if p not in self.supplied]

    def check_arguments(
        self, name: str, arguments: Mapping[str, Any], path: str = "arguments"
    ) -> dict[str, Any]:
        """Refuse argument names that `name` does not take (a typo in a config file) and values
        of the wrong type or out of range; `path` names them in the message
        (`'model_args.width' must be greater than 0, not 0`). The values as the function takes
        them: YAML 1.1 reads 1e-3 as text, which a float argument takes as the number."""
        accepted = self.accepted_arguments(name)
        unknown = sorted(set(arguments) - set(accepted))
        if unknown:
            raise UsageError(
                f"{self.kind} '{name}' has no argument {', '.join(unknown)}; "
                f"it takes: {', '.join(accepted) or 'nothing'}"
            )
        return checked_values(_arguments_model(self[name], self.supplied), arguments, path)


@functools.cache
def _arguments_model(function: Callable, supplied: tuple[str, ...]):
    """A pydantic model of the arguments a config may give `function`: its signature's
    annotations (ranges included) and defaults. pydantic is imported here, not at the top, so
    that commands answer --help without it."""
    import pydantic

    fields = {
        parameter.name: (
            Any if parameter.annotation is parameter.empty else parameter.annotation,
            ... if parameter.default is parameter.empty else parameter.default,
        )
        for parameter in inspect.signature(function, eval_str=True).parameters.values()
        if parameter.name not in supplied
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return pydantic.create_model(f"{function.__name__}_arguments", __config__=config, **fields)


def checked_values(model, values: Mapping[str, Any], path: str) -> dict[str, Any]:
    """`values` checked by the pydantic `model`, as it converted them; the first problem as one
    UsageError line that names its whole path."""
    import pydantic

    try:
        checked = model.model_validate(dict(values))
    except pydantic.ValidationError as error:
        raise UsageError(describe_problem(error, path)) from None
    return {key: getattr(checked, key) for key in values}


def describe_problem(error, path: str, shown_as: Callable[[str], str] | None = None) -> str:
    """pydantic's first error as `'path.field' must be ..., not VALUE`; `shown_as` turns the
    field's dotted name into another form (the flag that set it)."""
    first = error.errors(include_url=False)[0]
    dotted = ".".join(str(part) for part in first["loc"])
    where = shown_as(dotted) if shown_as else f"'{path}.{dotted}'"
    message = first["msg"]
    message = message[0].lower() + message[1:]
    for plain, ours in (("input should be", "must be"), ("field required", "is required")):
        message = message.replace(plain, ours)
    shown = "" if first["type"] == "missing" else f", not {first['input']!r}"
    return f"{where} {message}{shown}"
