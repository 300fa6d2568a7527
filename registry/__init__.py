"""What every package of the project shares and nothing of ours underlies: name -> function
registries filled by decorators (models, spaces, optimizers, datasets, ...) and UsageError, the
one exception type for mistakes a person can make (the commands turn it into one stderr line)."""

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable)


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what and what to do."""


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

    def check_arguments(self, name: str, arguments: Mapping[str, Any]) -> None:
        """Refuse argument names that `name` does not take (a typo in a config file)."""
        accepted = self.accepted_arguments(name)
        unknown = sorted(set(arguments) - set(accepted))
        if unknown:
            raise UsageError(
                f"{self.kind} '{name}' has no argument {', '.join(unknown)}; "
                f"it takes: {', '.join(accepted) or 'nothing'}"
            )
