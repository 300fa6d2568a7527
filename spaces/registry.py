"""The space registry: `@register_space("name")` on a function (trial, context) -> TrialConfig."""

import dataclasses

from search.registry import Registry


@dataclasses.dataclass(frozen=True)
class SpaceContext:
    """What a space may know about the search it serves, besides the trial."""

    dataset: str
    max_epochs: int  # the per-trial budget (--epochs); a space chooses epochs up to this
    seed: int  # the study's base seed; a trial trains with seed + trial.number


SPACES = Registry("space", supplied=("trial", "context"))
register_space = SPACES.register
