"""The space registry: `@register_space("name")` on a function (trial, context) -> TrialConfig,
and each space's known-good points (`register_warm_starts`), which `--warm-start` enqueues."""

import dataclasses
import functools
import warnings
from typing import Any

from registry import Registry, seed_plus

# The user attribute a re-run of a failed trial carries: the numbers of the trials it re-runs,
# the first one first (search/tuning/execution/retries.py writes it).
RETRY_HISTORY = "retry_history"
# The user attribute of a trial that continues a paused one (search/tuning/strategies/continuation.py):
# the numbers of the trials it carries on, the first one first.
CONTINUES = "continues"


def lineage(trial) -> list[int]:
    """The earlier trials this one carries on, oldest first: the paused trials it continues,
    then the failed runs it re-runs. The first is the run's origin, whose seed it keeps."""
    return [*trial.user_attrs.get(CONTINUES, []), *trial.user_attrs.get(RETRY_HISTORY, [])]


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """The checkpoint a fine-tuning search starts from (--init-from): where it is, the network
    it holds (its TrialConfig's model, model_args), the input size it takes and how it is
    evaluated (its test-time augmentation, part of the network's design, kept when tuning)."""

    path: str
    model: str
    model_args: dict[str, Any]
    image_size: int  # the square input the network was trained at
    tta: str = "none"
    tta_args: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SpaceContext:
    """What a space may know about the search it serves, besides the trial."""

    dataset: str
    epochs: int  # the study's --epochs: every trial plans exactly this many; pruning cuts it
    seed: int  # the study's base seed; a trial trains with trial_seed(trial)
    classes: tuple[str, ...] = ()  # --classes: a subset of the dataset's (empty: all)
    pretrained: Pretrained | None = None  # --init-from, for the spaces that fine-tune

    @property
    def max_epochs(self) -> int:
        """`epochs` under its name of the previous release, so that a space written for it
        still runs; deprecated (a FutureWarning, as Optuna's deprecations are, says so once a
        process: Python's own once-per-line goes each time a library resets its filters)."""
        _say_max_epochs_is_deprecated()
        return self.epochs

    def trial_seed(self, trial) -> int:
        """seed + the trial's number; a re-run of a failed trial, or a continuation of a paused
        one, keeps its origin's seed, so that it is the same training and can resume from its
        checkpoint."""
        earlier = lineage(trial)
        return seed_plus(self.seed, earlier[0] if earlier else trial.number)


@functools.cache
def _say_max_epochs_is_deprecated() -> None:
    warnings.warn(
        "SpaceContext.max_epochs is deprecated: use context.epochs (the same value)",
        FutureWarning, stacklevel=4,  # the space's line that read it
    )  # fmt: skip


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """A config a report found good, as the space's parameters; like every trial, it trains
    for the study's budget (--epochs)."""

    source: str  # which report, and what it measured
    params: dict[str, Any]


SPACES = Registry("space", supplied=("trial", "context"))
register_space = SPACES.register
WARM_STARTS: dict[str, list[WarmStart]] = {}
FINE_TUNING: set[str] = set()  # spaces that start from --init-from's checkpoint


def register_fine_tuning(space: str) -> None:
    """Mark a space as one that fine-tunes --init-from's network (and needs it)."""
    FINE_TUNING.add(space)


def register_warm_starts(space: str, *starts: WarmStart) -> None:
    if space in WARM_STARTS:
        raise ValueError(f"warm starts for space '{space}' are registered twice")
    WARM_STARTS[space] = list(starts)
