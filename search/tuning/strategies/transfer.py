"""--warm-start-from STUDY: a study that starts from an earlier one of the same space (on
other data, other classes, another budget):

- the earlier study's best configs are queued first, fitted to this study's ranges (a value
  outside them clamped, a choice this space does not offer dropped for the sampler to fill);
- then they guide the search (GUIDES, --warm-start-by): as a prior a share of trials is drawn
  near (prior.py, PriorBand; the default), or as the box the sampler searches (Syne Tune's
  BoundingBox, Perrone et al., "Learning search spaces for Bayesian optimization", NeurIPS
  2019): each number between their smallest and largest value, each choice among the values
  they took. Either is recorded on the study when it is created; every worker's trials
  suggest inside the box (BoxedTrial), so that every trial of the study, and Optuna's own
  checks of its distributions, see one search space, or draw from the prior.

Parameters that --fix pins are neither boxed nor taken from the earlier study, and neither are
those its own --fix pinned: a value no search of it chose says nothing about where to look. A
box of one config (--warm-start-top 1) searches nothing, and is refused unless
--warm-start-single asks for it; a parameter the box holds at one value is named."""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial

from registry import UsageError
from registry.options import OptionGroup, check_positive, flag
from search.tuning.records import keys, ledger
from search.tuning.records.settings import StudySettings

DEFAULT_TOP = 5  # Syne Tune's BoundingBox takes the best 1 of each of many tasks; we have one
# How the earlier study's configs guide the new one by default (GUIDES): the prior, measured in
# BENCHMARKS.md ("A prior from an earlier study"): level with the box on other classes of one
# dataset, far ahead of it across datasets (LCBench's tasks), where the box did worse than
# starting cold
DEFAULT_GUIDE = "prior"


@dataclasses.dataclass(frozen=True)
class WarmStartOptions(OptionGroup):
    """What a study starts from: the reports' known-good configs, or an earlier study."""

    title: ClassVar[str] = "warm starts"

    warm_start: bool = flag(
        False,
        help="before sampling, queue the space's known-good configs from the reports (see "
        "--list-spaces); each runs once per study",
    )
    warm_start_from: str = flag(
        "", metavar="STUDY",
        help="when creating the study, start from an earlier study of the same space (other "
        "data, classes or --epochs): its best configs run first, fitted to this study's "
        "ranges, and the sampler searches the box they span (Syne Tune's BoundingBox)",
    )  # fmt: skip
    warm_start_storage: str | None = flag(
        None, metavar="URL",
        help="the storage of the --warm-start-from study, read only (default: --storage)",
    )  # fmt: skip
    warm_start_top: int = flag(
        DEFAULT_TOP, type=int, metavar="K",
        help="with --warm-start-from: how many of its best configs to queue and span the box "
        f"with (default {DEFAULT_TOP})",
    )  # fmt: skip

    warm_start_by: str | None = flag(
        None, choices=("prior", "box"),
        help="with --warm-start-from, how its best configs guide the search after they have "
        "run: prior (a share of trials is drawn near them or near this study's best so far, "
        "the rest by the sampler over the whole space, the share following which the best "
        "trials agree with: PriorBand) or box (the sampler searches only the box they span: "
        "Syne Tune's BoundingBox, the default until 2026-12-07) (default: prior)",
    )  # fmt: skip
    warm_start_single: bool = flag(
        False,
        help="with --warm-start-top 1: run that one config's box, every parameter it set "
        "held at its value (refused without this flag: the sampler would search nothing)",
    )

    def check(self, given: Mapping[str, Any]) -> None:
        check_positive(given, "warm_start_top")
        if self.warm_start_by and not self.warm_start_from:
            raise UsageError(f"--warm-start-by {self.warm_start_by} says how an earlier study's "
                             "best configs guide the search; name that study with "
                             "--warm-start-from STUDY")  # fmt: skip
        single = self.warm_start_single or self.guide != "box"  # a prior searches everywhere
        if self.warm_start_from and self.warm_start_top == 1 and not single:
            raise UsageError(
                "--warm-start-top 1 holds every parameter at the one config's value: the "
                "sampler would search nothing; take 2 or more, or add --warm-start-single"
            )
        if self.warm_start and self.warm_start_from:
            raise UsageError(
                "--warm-start and --warm-start-from both queue configs first: choose one (the "
                "earlier study's box may leave out the reports' configs)"
            )
        if self.warm_start_storage and not self.warm_start_from:
            raise UsageError("--warm-start-storage names where --warm-start-from's study is; "
                             "give --warm-start-from STUDY too")  # fmt: skip

    @property
    def guide(self) -> str:
        """--warm-start-by, or the default way (DEFAULT_GUIDE) where it was not given."""
        return self.warm_start_by or DEFAULT_GUIDE

    def settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        return {"warm_start_from": self.warm_start_from or ""}

    def run_options(self) -> dict[str, Any]:
        return {
            "warm_start": bool(self.warm_start), "warm_start_storage": self.warm_start_storage,
            "warm_start_top": self.warm_start_top, "warm_start_by": self.guide,
        }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Transfer:
    """What a study takes from an earlier one: configs to queue, best first, each with the
    trial it came from, the box to search, and what had to change to fit this space."""

    source: str  # the earlier study's name
    configs: list[tuple[int, dict[str, Any]]]  # (its trial number, the params to queue)
    values: list[float]  # their validation accuracy there
    box: dict[str, dict[str, Any]]  # param -> {"low", "high"} or {"choices"}
    changes: list[str]

    def collapsed(self) -> list[str]:
        """'name=value' of each parameter the box holds at a single value."""
        held = []
        for name, bounds in self.box.items():
            values = bounds.get("choices") or sorted({bounds.get("low"), bounds.get("high")})
            if len(values) == 1:
                held.append(f"{name}={values[0]}")
        return held

    def describe(self, by: str = DEFAULT_GUIDE) -> str:
        """One line for the user: what was queued, how they guide the search after (`by`, a
        name of GUIDES), what was changed to fit."""
        accuracy = f"val_accuracy {self.values[0]:.4f}" + (
            f" to {self.values[-1]:.4f}" if len(self.values) > 1 else ""
        )
        changed = f"; {'; '.join(self.changes)}" if self.changes else ""
        return (
            f"warm start from study '{self.source}': queued its {len(self.configs)} best "
            f"config(s) ({accuracy}), and {GUIDES[by].said(self)}{changed}"
        )


@dataclasses.dataclass(frozen=True)
class Guide:
    """How an earlier study's best configs guide a new study once they have run: what the
    study records of them, and how the run's line says it."""

    born: Callable[[StudySettings, Transfer], StudySettings]
    said: Callable[[Transfer], str]


def boxed(wanted: StudySettings, transferred: Transfer) -> StudySettings:
    return dataclasses.replace(wanted, search_box=transferred.box)


def box_said(transferred: Transfer) -> str:
    held = transferred.collapsed()
    one = f"; held at one value: {', '.join(held)}" if held else ""
    return (f"the sampler searches the box they span ({len(transferred.box)} parameter(s) "
            f"narrowed{one})")  # fmt: skip


def as_prior(wanted: StudySettings, transferred: Transfer) -> StudySettings:
    return dataclasses.replace(wanted, warm_start_prior=[c for _, c in transferred.configs])


def prior_said(transferred: Transfer) -> str:
    return ("a share of trials is drawn near them or near this study's best (PriorBand), the "
            "rest by the sampler over the whole space")  # fmt: skip


# --warm-start-by NAME -> how the earlier study's configs guide the new one
GUIDES = {"box": Guide(boxed, box_said), "prior": Guide(as_prior, prior_said)}


def born_with(wanted: StudySettings, transferred: Transfer, by: str) -> StudySettings:
    """The new study's settings with what it takes from the earlier one, as `by` guides."""
    return GUIDES[by].born(wanted, transferred)


def fit(value: Any, distribution: BaseDistribution) -> tuple[Any, str]:
    """The value inside this space's range of the parameter: clamped to a number range (to
    its end, which Optuna keeps on its step's grid), or None where it is not one of the
    choices; and what was done ('': it fitted as it was)."""
    if isinstance(distribution, CategoricalDistribution):
        return (value, "") if value in distribution.choices else (None, "dropped")
    if not isinstance(distribution, FloatDistribution | IntDistribution):
        return value, ""
    if distribution.low <= value <= distribution.high:
        return value, ""
    return (distribution.low if value < distribution.low else distribution.high), "clamped"


def fitted_configs(
    trials: Sequence[FrozenTrial],
    ranges: Mapping[str, BaseDistribution],
    fixed: Mapping,
    pinned: Mapping = {},  # noqa: B006 - read only
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each trial's params fitted to this space's ranges, with --fix's values in place of
    theirs and the earlier study's `pinned` ones left out; and one phrase per parameter that
    had to change ('clamped sgd_lr 2.0 -> 1.0 in 1 config')."""
    configs, seen = [], {}
    for trial in trials:
        params = {}
        for name, value in trial.params.items():
            if name in fixed or name in pinned:
                continue
            if name not in ranges:
                seen.setdefault((name, "unknown"), []).append((value, None))
                continue
            fitted, done = fit(value, ranges[name])
            if done:
                seen.setdefault((name, done), []).append((value, fitted))
            if fitted is not None:
                params[name] = fitted
        configs.append({**params, **fixed})
    changes = []
    for (name, done), values in seen.items():
        count = f"{len(values)} config{'s' if len(values) > 1 else ''}"
        if done == "clamped":
            shown = ", ".join(f"{before:g} -> {after:g}" for before, after in values[:3])
            changes.append(f"clamped {name} {shown} (in {count}) to its range")
        elif done == "dropped":
            choices = ", ".join(map(str, ranges[name].choices))
            taken = ", ".join(sorted({str(before) for before, _ in values}))
            changes.append(f"dropped {name}={taken} (in {count}): not one of {choices}")
        else:
            changes.append(f"dropped {name} (in {count}): not a parameter of this space")
    return configs, changes


def bounding_box(
    configs: Sequence[Mapping[str, Any]], ranges: Mapping[str, BaseDistribution], fixed: Mapping
) -> dict[str, dict[str, Any]]:
    """Each parameter the configs set (not a --fix one): its numbers' smallest and largest, or
    its choices that they took, in the space's order."""
    box: dict[str, dict[str, Any]] = {}
    for name, distribution in ranges.items():
        taken = [config[name] for config in configs if name in config]
        if not taken or name in fixed:
            continue
        if isinstance(distribution, CategoricalDistribution):
            box[name] = {"choices": [c for c in distribution.choices if c in taken]}
        else:
            box[name] = {"low": min(taken), "high": max(taken)}
    return box


def plan(
    source: optuna.Study,
    wanted: StudySettings,
    ranges: Mapping[str, BaseDistribution],
    top: int = DEFAULT_TOP,
    pinned: Mapping[str, Any] = {},  # noqa: B006 - read only
) -> Transfer:
    """What a new study of `wanted` settings takes from the `source` study (already checked to
    be of the same space, its --fix `pinned`): its `top` best trials, fitted to `ranges`
    (this study's)."""
    # by validation accuracy, the first objective whatever others the study has
    trials = ledger.best_first(source.get_trials(deepcopy=False), source.directions[0])[:top]
    if not trials:
        raise UsageError(
            f"--warm-start-from {source.study_name}: that study has no complete trial to start from"
        )
    fixed = dict(wanted.fixed_params)
    configs, changes = fitted_configs(trials, ranges, fixed, pinned)
    left_out = sorted(set(pinned) - set(fixed))
    if left_out:
        changes.append(f"left out {', '.join(left_out)}: pinned by the --fix of study "
                       f"'{source.study_name}', not chosen by its search")  # fmt: skip
    return Transfer(
        source.study_name, [(t.number, c) for t, c in zip(trials, configs, strict=True)],
        [t.values[0] for t in trials], bounding_box(configs, ranges, fixed), changes,
    )  # fmt: skip


def check_source(source_space: str, source_name: str, space: str) -> None:
    if source_space != space:
        raise UsageError(
            f"--warm-start-from {source_name}: that study searched space {source_space}, not "
            f"{space}; its configs do not fit this one (warm-start from a study of space "
            f"{space})"
        )


def enqueue(found: optuna.Study, transfer: Transfer) -> int:
    """Queue the transfer's configs, best first; how many were newly queued."""
    return ledger.enqueue_once(found, [
        (params, {keys.WARM_START_FROM: f"{transfer.source} trial {number}"})
        for number, params in transfer.configs
    ])  # fmt: skip


def narrowed(low, high, box: Mapping[str, Any] | None):
    """[low, high] within the box's [low, high] (its ends are values of this space's grid);
    the range as it was where the two do not meet (a range that depends on another
    parameter)."""
    if not box:
        return low, high
    inner_low, inner_high = max(low, box["low"]), min(high, box["high"])
    return (low, high) if inner_low > inner_high else (inner_low, inner_high)


class BoxedTrial:
    """An Optuna trial whose suggestions keep inside a box: numbers within its bounds, choices
    among its values; everything else is the trial's. A space sees no difference."""

    def __init__(self, trial: optuna.Trial, box: Mapping[str, Mapping[str, Any]]):
        self._trial, self._box = trial, box

    def __getattr__(self, name: str):
        return getattr(self._trial, name)

    def suggest_float(self, name, low, high, *, step=None, log=False):
        low, high = narrowed(low, high, self._box.get(name))
        return self._trial.suggest_float(name, low, high, step=step, log=log)

    def suggest_int(self, name, low, high, *, step=1, log=False):
        low, high = narrowed(low, high, self._box.get(name))
        return self._trial.suggest_int(name, low, high, step=step, log=log)

    def suggest_categorical(self, name, choices):
        allowed = self._box.get(name, {}).get("choices")
        kept = [choice for choice in choices if choice in allowed] if allowed else None
        return self._trial.suggest_categorical(name, kept or choices)


def within_box(space: Callable, box: Mapping[str, Mapping[str, Any]]) -> Callable:
    """The space, suggesting inside the box (the space itself where there is none)."""
    if not box:
        return space
    return lambda trial, context: space(BoxedTrial(trial, box), context)
