"""The one place that turns a study's settings into its strategy: the sampler and pruner a
study runs with (attach), the scheduler that the execution loop drives (of: by the settings'
--scheduler, from SCHEDULERS), and which settings fit together (check). A new strategy is a
module of this folder and its registration here."""

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import optuna

from registry import Registry, UsageError, seed_plus
from registry.options import OptionGroup, flag
from search.tuning.records.settings import StudySettings, parse_objectives
from search.tuning.strategies import continuation, pbt, prior
from search.tuning.strategies.pareto_halving import ParetoHalving, ParetoScheduler
from search.tuning.strategies.pruners import (
    DEFAULT_MULTI_OBJECTIVE_PRUNER,
    DEFAULT_PRUNER,
    MULTI_OBJECTIVE_PRUNERS,
    PAUSING_PRUNERS,
    PRUNERS,
    UNCHECKPOINTED_PRUNER,
    WAITING_PRUNERS,
)
from search.tuning.strategies.samplers import (
    DEFAULT_MULTI_OBJECTIVE_SAMPLER,
    DEFAULT_SAMPLER,
    SAMPLERS,
    SINGLE_OBJECTIVE_SAMPLERS,
)
from search.tuning.strategies.scheduler import Scheduler

# --scheduler NAME -> the scheduler of a study of those settings, given what tells whether a
# trial's checkpoint is there to resume (None: trials do not checkpoint). "": the default.
SCHEDULERS: Registry = Registry("scheduler", supplied=("settings", "resumable"))


@dataclasses.dataclass(frozen=True)
class StrategyOptions(OptionGroup):
    """How the study searches: its sampler, its pruner or scheduler, pausing, its seed."""

    title: ClassVar[str] = "strategy"

    sampler: str | None = flag(
        None,
        help=f"{', '.join(SAMPLERS.names())} (default {DEFAULT_SAMPLER}; with several "
        f"--objectives {DEFAULT_MULTI_OBJECTIVE_SAMPLER})",
    )
    pruner: str | None = flag(
        None,
        help=f"{', '.join(PRUNERS.names())} (default {DEFAULT_PRUNER}, its paused trials "
        f"continued from their checkpoints; with --checkpoint-dir '' {UNCHECKPOINTED_PRUNER}; "
        "decides per epoch; with several --objectives: moasha, successive halving by Pareto "
        "front (the default), or none)",
    )
    scheduler: str = flag(
        "",
        choices=None,  # filled from SCHEDULERS when the parser is made
        help="pbt: population-based training instead of independent trials: --population "
        "members train together and every --pbt-interval epochs the worst quarter copy the "
        "weights and hyperparameters of the best quarter and perturb the learning rate, weight "
        "decay and augmentation strengths (x0.8 or x1.2), as Ray Tune's synchronous PBT does; "
        "--trials is then the population times its intervals (default: independent trials)",
    )
    population: int | None = flag(
        None, type=int, metavar="N",
        help=f"with --scheduler pbt: members of the population (default {pbt.DEFAULT_POPULATION})",
    )  # fmt: skip
    pbt_interval: int | None = flag(
        None, type=int, metavar="E",
        help="with --scheduler pbt: epochs between exploits (default a quarter of --epochs)",
    )  # fmt: skip
    pause_pruned: bool | None = flag(
        None, action=argparse.BooleanOptionalAction,
        help="successive halving (--pruner hyperband, sha or sha3; sha3-hybrid and "
        "sha3-promotion need it) pauses the trials it stops, keeping their checkpoints, and "
        "continues one from there when later results put it in its rung's top share (as ASHA "
        "promotes); a continuation takes the paused trial's place in --trials (default: on for "
        f"{' and '.join(WAITING_PRUNERS)}, the default pruner among them, off for the others)",
    )  # fmt: skip
    keep_paused: int = flag(
        20, type=int, metavar="K",
        help="with --pause-pruned, keep the checkpoints of the K most promising paused trials "
        "(the highest rung, then the best value); the others' are removed and they cannot be "
        "continued (default 20)",
    )  # fmt: skip
    thaw: str = flag(
        continuation.DEFAULT_THAW,
        choices=continuation.THAW_RULES.names(),
        help="with --pause-pruned, how a rung ranks its trials to promote a paused one: rung, "
        "the value each had there (as ASHA); forecast, the value its curve up to the rung "
        "extrapolates to at the last epoch (freeze-thaw's way) (default "
        f"{continuation.DEFAULT_THAW})",
    )
    seed: int = flag(0, type=int, help="sampler seed; trial N trains with seed+N (default 0)")

    def settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The strategy the study records: the pruner its objectives take by default, and what
        a population implies (pbt.implied)."""
        objectives = parse_objectives(given["objectives"])
        sampler = chosen_sampler(self.sampler, len(objectives))
        pruner = check_choice(sampler, self.pruner, len(objectives), bool(given["checkpoint_dir"]))
        chosen = {
            "sampler": sampler, "pruner": pruner,
            **pbt.implied(
                self.scheduler, self.population, self.pbt_interval, given["epochs"], self.pruner
            ),
        }  # fmt: skip
        pause = self.pause_pruned
        return {
            **chosen, "seed": self.seed,
            "pause_pruned": chosen["pruner"] in WAITING_PRUNERS if pause is None else pause,
            "keep_paused": self.keep_paused, "thaw": self.thaw,
        }  # fmt: skip


def chosen_sampler(sampler: str | None, objectives: int) -> str:
    """The sampler asked for, or the default for that many objectives."""
    if sampler:
        return sampler
    return DEFAULT_SAMPLER if objectives == 1 else DEFAULT_MULTI_OBJECTIVE_SAMPLER


def check_choice(
    sampler: str, pruner: str | None, objectives: int, checkpoints: bool = True
) -> str:
    """Refuse unknown names and combinations that cannot run; the pruner to use (moasha or
    none for a multi-objective study: Optuna's own pruners take one value; without
    `checkpoints`, the default's stopping type: the default pauses trials to continue them)."""
    SAMPLERS[sampler]
    if objectives == 1:
        chosen = pruner or (DEFAULT_PRUNER if checkpoints else UNCHECKPOINTED_PRUNER)
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
    """What the settings' strategy needs beside their own types and ranges: known sampler,
    pruner and scheduler names, and what the scheduler needs (its builder checks)."""
    SAMPLERS[settings.sampler]
    PRUNERS[settings.pruner]
    of(settings)


def attach(found: optuna.Study, settings: StudySettings, slot: int) -> optuna.Study:
    """The study with the sampler and pruner its settings name. Each worker seeds its sampler
    differently (by slot and by how far the study has got), so that parallel and resumed
    workers do not propose the same points."""
    seed = seed_plus(settings.seed, len(found.get_trials(deepcopy=False)) + 7919 * slot)
    found.sampler = SAMPLERS[settings.sampler](seed)
    if settings.warm_start_prior:  # --warm-start-by prior: PriorBand's share of trials
        found.sampler = prior.PriorSampler(found.sampler, settings.warm_start_prior, seed)
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
    if (settings.pause_pruned or settings.thaw != continuation.DEFAULT_THAW
            or settings.pruner in WAITING_PRUNERS):  # fmt: skip
        check_pausing(settings)
    if len(settings.objectives) > 1:
        halving = ParetoHalving(settings.objectives, settings.epochs)
        return ParetoScheduler(
            settings.trials, settings.epoch_budget,
            halving=halving if settings.pruner == "moasha" else None,
        )  # fmt: skip
    return Scheduler(
        settings.trials, settings.epoch_budget, pause=settings.pause_pruned,
        keep_paused=settings.keep_paused if settings.pause_pruned else 0, resumable=resumable,
        judge=continuation.THAW_RULES[settings.thaw](settings.epochs),
    )  # fmt: skip


def check_pausing(settings: StudySettings) -> None:
    """What --pause-pruned needs: rungs that can promote a paused trial, and its checkpoint;
    and what --thaw and a pruner that holds trials paused need: paused trials."""
    if not settings.pause_pruned:
        if settings.pruner in WAITING_PRUNERS:
            raise UsageError(f"--pruner {settings.pruner} holds a rung's trials paused until "
                             "enough have reached it: it needs --pause-pruned")  # fmt: skip
        raise UsageError(f"--thaw {settings.thaw} ranks paused trials: it needs --pause-pruned")
    if settings.pruner not in PAUSING_PRUNERS:
        raise UsageError(
            f"--pause-pruned needs a pruner whose rungs can promote a paused trial "
            f"({', '.join(PAUSING_PRUNERS)}), not --pruner {settings.pruner}"
        )
    if not settings.checkpoint_dir:
        raise UsageError("--pause-pruned needs --checkpoint-dir: a paused trial goes on "
                         "from its checkpoint")  # fmt: skip


@SCHEDULERS.register("pbt")
def population(settings: StudySettings, resumable: Callable[[int], bool] | None) -> Scheduler:
    pbt.check(settings)
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
