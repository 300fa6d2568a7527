"""The one place that turns a study's settings into its strategy: the sampler and pruner a
study runs with (attach), the scheduler that the execution loop drives (of: by the settings'
--scheduler, from SCHEDULERS), and which settings fit together (check). A new strategy is a
module of this folder and its registration here."""

from collections.abc import Callable

import optuna

from registry import Registry, UsageError, seed_plus
from search.tuning.records.settings import StudySettings
from search.tuning.strategies import pbt
from search.tuning.strategies.pareto_halving import ParetoHalving, ParetoScheduler
from search.tuning.strategies.pruners import (
    DEFAULT_MULTI_OBJECTIVE_PRUNER,
    DEFAULT_PRUNER,
    MULTI_OBJECTIVE_PRUNERS,
    PAUSING_PRUNERS,
    PRUNERS,
)
from search.tuning.strategies.samplers import SAMPLERS, SINGLE_OBJECTIVE_SAMPLERS
from search.tuning.strategies.scheduler import Scheduler

# --scheduler NAME -> the scheduler of a study of those settings, given what tells whether a
# trial's checkpoint is there to resume (None: trials do not checkpoint). "": the default.
SCHEDULERS: Registry = Registry("scheduler", supplied=("settings", "resumable"))


def check_choice(sampler: str, pruner: str | None, objectives: int) -> str:
    """Refuse unknown names and combinations that cannot run; the pruner to use (moasha or
    none for a multi-objective study: Optuna's own pruners take one value)."""
    SAMPLERS[sampler]
    if objectives == 1:
        chosen = pruner or DEFAULT_PRUNER
        PRUNERS[chosen]
        if chosen == "moasha":
            raise UsageError("--pruner moasha is for several --objectives; use hyperband or sha")
        return chosen
    if sampler in SINGLE_OBJECTIVE_SAMPLERS:
        raise UsageError(
            f"--sampler {sampler} handles one objective only; use tpe, gp, random or qmc"
        )
    chosen = pruner or DEFAULT_MULTI_OBJECTIVE_PRUNER
    if chosen not in MULTI_OBJECTIVE_PRUNERS:
        PRUNERS[chosen]  # an unknown name is refused as such first
        raise UsageError(
            f"--pruner {chosen} compares one objective; with several --objectives use "
            f"{' or '.join(MULTI_OBJECTIVE_PRUNERS)}"
        )
    return chosen


def check(settings: StudySettings) -> None:
    """What the settings' strategy needs beside their own types and ranges: known sampler and
    pruner names, a pruner that can promote paused trials, what a population needs."""
    SAMPLERS[settings.sampler]
    PRUNERS[settings.pruner]
    if settings.pause_pruned and settings.pruner not in PAUSING_PRUNERS:
        raise UsageError(
            f"--pause-pruned needs a pruner whose rungs can promote a paused trial "
            f"({', '.join(PAUSING_PRUNERS)}), not --pruner {settings.pruner}"
        )
    if settings.scheduler == "pbt":
        check_population(settings)
    if settings.pause_pruned and not settings.checkpoint_dir:
        raise UsageError("--pause-pruned needs --checkpoint-dir: a paused trial goes on "
                         "from its checkpoint")  # fmt: skip


def check_population(settings: StudySettings) -> None:
    """What population-based training needs: one objective, members that checkpoint (an
    exploit copies them), no pruner beside it, at least two members and an interval that
    leaves a later one."""
    if len(settings.objectives) > 1:
        raise UsageError("--scheduler pbt ranks members by one objective: accuracy alone")
    if not settings.checkpoint_dir:
        raise UsageError("--scheduler pbt needs --checkpoint-dir: members copy each other's")
    if settings.pause_pruned or settings.pruner != "none":
        raise UsageError("--scheduler pbt stops and copies members itself: leave out "
                         "--pruner and --pause-pruned")  # fmt: skip
    if settings.population < 2:
        raise UsageError("--population must be at least 2: members exploit each other")
    if not 1 <= settings.pbt_interval < settings.epochs:
        raise UsageError(
            f"--pbt-interval must be at least 1 and below --epochs {settings.epochs}, so that "
            "members exploit at least once"
        )


def attach(found: optuna.Study, settings: StudySettings, slot: int) -> optuna.Study:
    """The study with the sampler and pruner its settings name. Each worker seeds its sampler
    differently (by slot and by how far the study has got), so that parallel and resumed
    workers do not propose the same points."""
    seed = seed_plus(settings.seed, len(found.get_trials(deepcopy=False)) + 7919 * slot)
    found.sampler = SAMPLERS[settings.sampler](seed)
    if settings.fixed_params:  # search.run --fix: those parameters take the given values
        found.sampler = optuna.samplers.PartialFixedSampler(
            dict(settings.fixed_params), found.sampler
        )
    found.pruner = PRUNERS[settings.pruner](settings.epochs)
    return found


@SCHEDULERS.register("")
def independent(settings: StudySettings, resumable: Callable[[int], bool] | None) -> Scheduler:
    """Independent trials: judged by the study's pruner, or with several objectives by the
    Pareto-front rule (--pruner moasha) or none."""
    if len(settings.objectives) > 1:
        halving = ParetoHalving(settings.objectives, settings.epochs)
        return ParetoScheduler(
            settings.trials, settings.epoch_budget,
            halving=halving if settings.pruner == "moasha" else None,
        )  # fmt: skip
    return Scheduler(
        settings.trials, settings.epoch_budget, pause=settings.pause_pruned,
        keep_paused=settings.keep_paused if settings.pause_pruned else 0, resumable=resumable,
    )  # fmt: skip


@SCHEDULERS.register("pbt")
def population(settings: StudySettings, resumable: Callable[[int], bool] | None) -> Scheduler:
    return pbt.PopulationScheduler(
        settings.trials, settings.epoch_budget, population=pbt.Population.of(settings)
    )


def of(settings: StudySettings, resumable: Callable[[int], bool] | None = None) -> Scheduler:
    """The scheduler a study of `settings` runs with."""
    return SCHEDULERS[settings.scheduler](settings, resumable)


def standalone(objectives: tuple[str, ...]) -> Scheduler:
    """The scheduler of an objective run on its own, by a plain study.optimize (a test, a
    notebook), not by the execution loop, whose target and budget it then has no use for: the
    study's own pruner judges each epoch; with several objectives the curve is recorded."""
    return ParetoScheduler(target=0) if len(objectives) > 1 else Scheduler(target=0)
