"""A space's parameters and ranges, read off by sampling it (define-by-run spaces have no
static schema): what `search.run --list-spaces` and `python -m search.spaces` print."""

from collections.abc import Sequence

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from registry import UsageError
from spaces.registry import FINE_TUNING, SPACES, WARM_STARTS, Pretrained, SpaceContext

SAMPLES = 400  # random draws: enough to reach every branch of the spaces we ship


def format_distribution(distribution: BaseDistribution) -> str:
    if isinstance(distribution, CategoricalDistribution):
        return "one of " + ", ".join(map(str, distribution.choices))
    if isinstance(distribution, FloatDistribution | IntDistribution):
        kind = "float" if isinstance(distribution, FloatDistribution) else "int"
        scale = ", log" if distribution.log else ""
        return f"{kind} {distribution.low:g} .. {distribution.high:g}{scale}"
    return repr(distribution)


def widen(seen: BaseDistribution | None, drawn: BaseDistribution) -> BaseDistribution:
    """The range that covers both: a parameter whose bounds depend on another's value
    (backbone's `convs` shrinks as `blocks` grows) shows its whole range, not its last one."""
    if seen is None or type(seen) is not type(drawn):
        return drawn
    if isinstance(drawn, CategoricalDistribution):
        extra = [choice for choice in drawn.choices if choice not in seen.choices]
        return CategoricalDistribution([*seen.choices, *extra])
    if isinstance(drawn, FloatDistribution | IntDistribution):
        low, high = min(seen.low, drawn.low), max(seen.high, drawn.high)
        return type(drawn)(low, high, log=drawn.log, step=drawn.step)
    return drawn


def parameter_ranges(
    name: str, context: SpaceContext
) -> tuple[dict[str, BaseDistribution], dict[str, int]]:
    """(each parameter's whole range, in how many of SAMPLES random draws it was asked)."""
    space = SPACES[name]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(SAMPLES):
        space(study.ask(), context)  # left running: telling, and each trial's deep copy of its
        # distributions, took about a third of the draws' time (every search.run with --fix)
    ranges: dict[str, BaseDistribution] = {}
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        for param, distribution in trial.distributions.items():
            ranges[param] = widen(ranges.get(param), distribution)
            counts[param] = counts.get(param, 0) + 1
    return ranges, counts


def check_fixed(name: str, context: SpaceContext, fixed: dict[str, object]) -> None:
    """Refuse a --fix of a parameter the space does not have, or of a value outside its range."""
    ranges, _ = parameter_ranges(name, context)
    for param, value in fixed.items():
        if param not in ranges:
            raise UsageError(
                f"--fix {param}: space {name} has no such parameter (--list-spaces shows them)"
            )
        distribution = ranges[param]
        try:
            inside = distribution._contains(distribution.to_internal_repr(value))
        except (ValueError, TypeError):
            inside = False
        if not inside:
            raise UsageError(
                f"--fix {param}={value}: outside its range, {format_distribution(distribution)}"
            )


def describe(name: str, context: SpaceContext) -> list[str]:
    """One line for the space, then one per parameter with its range and whether it is
    conditional (exists only in some branches), then the space's warm starts."""
    space = SPACES[name]
    ranges, counts = parameter_ranges(name, context)
    summary = " ".join((space.__doc__ or "").split())
    lines = [f"{name}: {summary}"]
    width = max(map(len, ranges), default=0)
    for param, distribution in ranges.items():
        condition = "" if counts[param] == SAMPLES else "  (conditional)"
        lines.append(f"  {param:<{width}}  {format_distribution(distribution)}{condition}")
    lines += [f"  warm start: {start.source}" for start in WARM_STARTS.get(name, [])]
    return lines


# What a fine-tuning space is described with: its network comes from --init-from.
LISTED_CHECKPOINT = Pretrained("CHECKPOINT", "(the checkpoint's)", {}, 0)


def describe_all(names: Sequence[str], epochs: int) -> str:
    """Every named space described for a study of --epochs, one after another."""
    plain = SpaceContext("cifar10", epochs, 0)
    tuning = SpaceContext("cifar10", epochs, 0, pretrained=LISTED_CHECKPOINT)
    return "\n".join(
        line for name in names for line in describe(name, tuning if name in FINE_TUNING else plain)
    )
