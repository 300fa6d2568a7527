"""Search spaces, by name: `spaces.get("resnet")(trial, context) -> TrialConfig`.

A space only chooses values (define-by-run, conditional parameters inside the `if` that makes
them relevant); it never trains. Parameter names are a schema: renaming one breaks resumed studies.
"""

import importlib

from registry import UsageError
from spaces import (  # noqa: F401  (importing registers the spaces)
    backbone,
    convnet,
    densenet,
    describe,
    fast,
    finetune,
    mlp,
    resnet,
)
from spaces.registry import (
    CONTINUES,
    FINE_TUNING,
    RETRY_HISTORY,
    SPACES,
    WARM_STARTS,
    Pretrained,
    SpaceContext,
    WarmStart,
    lineage,
    register_fine_tuning,
    register_space,
    register_warm_starts,
)

__all__ = [
    "CONTINUES", "FINE_TUNING", "RETRY_HISTORY", "SPACES", "WARM_STARTS", "Pretrained",
    "SpaceContext", "WarmStart", "get", "import_user_module", "lineage", "list_spaces", "register_fine_tuning", "register_space",
    "register_warm_starts", "warm_starts",
]  # fmt: skip


def import_user_module(module: str | None) -> None:
    """Import a module of the user's whose @register_space functions add their own spaces."""
    if not module:
        return
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise UsageError(f"--space-module {module} cannot be imported: {error}") from None
    except UsageError:
        raise
    except Exception as error:  # the user's own code failed (a space registered twice, say)
        raise UsageError(
            f"--space-module {module} failed as it was imported: {type(error).__name__}: {error}"
        ) from None


def get(name: str):
    return SPACES[name]


def list_spaces() -> list[str]:
    return SPACES.names()


def warm_starts(name: str) -> list[WarmStart]:
    """The space's known-good points (none for a space that registered none)."""
    SPACES[name]
    return WARM_STARTS.get(name, [])
