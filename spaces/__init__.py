"""Search spaces, by name: `spaces.get("resnet")(trial, context) -> TrialConfig`.

A space only chooses values (define-by-run, conditional parameters inside the `if` that makes
them relevant); it never trains. Parameter names are a schema: renaming one breaks resumed studies.
"""

from spaces import mlp, resnet  # noqa: F401  (importing registers the spaces)
from spaces.registry import SPACES, SpaceContext, register_space

__all__ = ["SPACES", "SpaceContext", "get", "list_spaces", "register_space"]


def get(name: str):
    return SPACES[name]


def list_spaces() -> list[str]:
    return SPACES.names()
