"""A space's parameters and ranges, read off by sampling it (define-by-run spaces have no
static schema): what `search.run --list-spaces` prints."""

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from spaces.registry import SPACES, WARM_STARTS, SpaceContext

SAMPLES = 400  # random draws: enough to reach every branch of the spaces we ship


def format_distribution(distribution: BaseDistribution) -> str:
    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(map(str, distribution.choices))
    if isinstance(distribution, FloatDistribution | IntDistribution):
        kind = "float" if isinstance(distribution, FloatDistribution) else "int"
        scale = ", log" if distribution.log else ""
        return f"{kind} {distribution.low:g} .. {distribution.high:g}{scale}"
    return repr(distribution)


def describe(name: str, context: SpaceContext) -> list[str]:
    """One line for the space, then one per parameter with its range and whether it is
    conditional (exists only in some branches), then the space's warm starts."""
    space = SPACES[name]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: dict[str, tuple[BaseDistribution, int]] = {}
    for _ in range(SAMPLES):
        trial = study.ask()
        space(trial, context)
        for param, distribution in trial.distributions.items():
            seen[param] = (distribution, seen.get(param, (None, 0))[1] + 1)
        study.tell(trial, 0.0)
    summary = " ".join((space.__doc__ or "").split())
    lines = [f"{name}: {summary}"]
    width = max(map(len, seen), default=0)
    for param, (distribution, count) in seen.items():
        condition = "" if count == SAMPLES else "  (conditional)"
        lines.append(f"  {param:<{width}}  {format_distribution(distribution)}{condition}")
    lines += [f"  warm start: {start.source}" for start in WARM_STARTS.get(name, [])]
    return lines
