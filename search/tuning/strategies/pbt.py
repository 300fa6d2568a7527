"""--scheduler pbt: population-based training (Jaderberg et al., 2017) on Optuna's storage, as
Ray Tune's PopulationBasedTraining runs it with synch=True: a population of --population
members trains in intervals of --pbt-interval epochs; when every member has finished an
interval, the worst quarter each copy a member of the best quarter (its weights, optimizer
state and hyperparameters: exploit) and perturb the hyperparameters that may change during a
run (explore: the learning rate, weight decay and augmentation strengths, each times 0.8 or
1.2, Ray's perturbation factors), while the others go on as they were. Ray Tune's explore
also resamples a value from its hyperparameter's distribution (resample_probability 0.25);
this one does not: the values it changes mid-run are the member's own branch of the space
(one optimizer's learning-rate range, one augmentation's strengths), with no one distribution
to draw them from.

Each member's interval is a trial of its own (a segment), so that workers on any host take
them as they take any trial, and the study shows every step: generation 0's segments are
sampled from the space by the study's sampler; a later segment is queued with the parameters
of the segment it goes on from (its own last one, or its donor's), that segment in its lineage
(keys.CONTINUES: its seed and its checkpoint), and its config's changes (config.Change:
what search.train replays) in its PBT user attribute (keys.PBT). A segment resumes from its parent's
checkpoint as a re-run resumes, re-reporting the earlier epochs, so that its curve is the
member's whole run; it stops at its interval's end (PRUNED, "interval over") or, in the last
generation, completes. The study's best trial is the best member's last segment, and its
exported config replays the member's whole schedule from scratch."""

import dataclasses
import math
import random
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import spaces
from registry import UsageError, seed_plus
from search.training import config
from search.training.config import TrialConfig
from search.tuning.records import config_attrs, keys, ledger
from search.tuning.records.settings import StudySettings
from search.tuning.strategies.scheduler import Decision, Next, NotNeeded, Scheduler

DEFAULT_POPULATION = 8  # Ray Tune's PBT examples run 4 to 8; the PBT paper 10 to 80
QUANTILE = 0.25  # Ray Tune's quantile_fraction: the worst quarter copy the best quarter
FACTORS = (1.2, 0.8)  # Ray Tune's perturbation_factors


def implied(
    scheduler: str, population: int | None, interval: int | None, epochs: int, pruner: str | None
) -> dict[str, Any]:
    """--scheduler, --population and --pbt-interval as the study records them, with the pruner
    and the trials they imply: with pbt, no pruner (members stop at each interval themselves)
    and a trial for each member's each interval."""
    if scheduler != "pbt":
        for name, value in (("population", population), ("pbt-interval", interval)):
            if value is not None:
                raise UsageError(f"--{name} is for --scheduler pbt")
        return {"scheduler": scheduler, "population": 0, "pbt_interval": 0}
    population = DEFAULT_POPULATION if population is None else population
    interval = interval or max(1, epochs // 4)
    return {
        "scheduler": "pbt", "population": population, "pbt_interval": interval,
        "pruner": pruner or "none", "trials": population * -(-epochs // interval),
    }  # fmt: skip


def check(settings: StudySettings) -> None:
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


@dataclasses.dataclass(frozen=True)
class Population:
    """A study's population: its size, interval and the epochs each member trains."""

    size: int
    interval: int
    epochs: int
    seed: int

    @classmethod
    def of(cls, settings: StudySettings) -> "Population":
        return cls(settings.population, settings.pbt_interval, settings.epochs, settings.seed)

    @property
    def generations(self) -> int:
        return math.ceil(self.epochs / self.interval)

    def last_epoch(self, generation: int) -> int:
        """The epoch a generation's segments stop after."""
        return min((generation + 1) * self.interval, self.epochs)

    def done(self, trials: list[FrozenTrial]) -> bool:
        """Whether the last generation has a finished segment of every member."""
        return len(finished_members(trials, self.generations - 1)) >= self.size

    def has_work(self, trials: list[FrozenTrial]) -> bool:
        """Whether a worker may start a trial now: a segment is queued, or generation 0 has
        room for another member."""
        return any(t.state == TrialState.WAITING for t in trials) or self.fresh_room(trials)

    def fresh_room(self, trials: list[FrozenTrial]) -> bool:
        """Whether generation 0 needs another member sampled: fewer than the population are
        finished, running or queued."""
        alive = (*ledger.FINISHED, TrialState.RUNNING, TrialState.WAITING)
        return sum(generation_of(t) == 0 and t.state in alive for t in trials) < self.size

    def plan(self, found: optuna.Study) -> int:
        """Queue the next generation if the newest one has a finished segment of every member
        and none of the next is there yet; how many were queued. Every worker calls this
        after each trial and while it waits: the first to see the generation complete queues
        it (two at once queue it twice; a segment whose member already has one in its
        generation is not needed, start_segment)."""
        trials = found.get_trials(deepcopy=False)
        newest = max((generation_of(t) for t in trials if generation_of(t) is not None),
                     default=-1)  # fmt: skip
        if newest < 0 or newest >= self.generations - 1:
            return 0
        members = finished_members(trials, newest)
        if len(members) < self.size:
            return 0
        for segment in self.next_generation(members, newest):
            found.enqueue_trial(segment.params, user_attrs=segment.user_attrs)
        return self.size

    def next_generation(self, members: dict[int, FrozenTrial], generation: int):
        """Each member's next segment: the worst quarter's copies of the best quarter's,
        perturbed, and the others' own, unchanged; drawn from the study's seed and the
        generation alone, so that two workers plan the same."""
        epoch = self.last_epoch(generation)
        ranked = sorted(members.values(), key=lambda t: (-value_at_end(t, epoch), t.number))
        count = min(math.ceil(len(ranked) * QUANTILE), len(ranked) // 2)
        top, bottom = ranked[:count], {t.number for t in ranked[len(ranked) - count :]}
        draw = random.Random(seed_plus(self.seed, 7907 * (generation + 1)))
        for member, segment in sorted(members.items()):
            if segment.number in bottom:
                donor = draw.choice(top)
                changes = [*changes_of(donor), explored(donor, epoch, self.epochs, draw)]
                yield Segment.after(donor, generation + 1, member, member_of(donor), changes)
            else:
                yield Segment.after(segment, generation + 1, member, None, changes_of(segment))


@dataclasses.dataclass(frozen=True)
class Segment:
    """A queued segment: the parameters and user attributes it is enqueued with."""

    params: dict[str, Any]
    user_attrs: dict[str, Any]

    @classmethod
    def after(cls, parent: FrozenTrial, generation: int, member: int, donor, changes):
        return cls(
            dict(parent.params),
            {
                keys.CONTINUES: [*spaces.lineage(parent), parent.number],
                keys.PBT: {"generation": generation, "member": member, "donor": donor,
                      "changes": changes},
            },
        )  # fmt: skip


def generation_of(trial: FrozenTrial) -> int | None:
    """A segment's generation (None: not a segment yet: a generation-0 trial before it has
    started, or one that was not needed)."""
    if trial.user_attrs.get(keys.NOT_NEEDED):
        return None
    return trial.user_attrs.get(keys.PBT, {}).get("generation")


def member_of(trial: FrozenTrial) -> int:
    return trial.user_attrs[keys.PBT]["member"]


def changes_of(trial: FrozenTrial) -> list[dict[str, Any]]:
    return list(trial.user_attrs[keys.PBT].get("changes", []))


def finished_members(trials: list[FrozenTrial], generation: int) -> dict[int, FrozenTrial]:
    """Each member's finished segment of a generation (the first, should two have run)."""
    found: dict[int, FrozenTrial] = {}
    for trial in trials:
        if generation_of(trial) == generation and trial.state in ledger.FINISHED:
            found.setdefault(member_of(trial), trial)
    return found


def value_at_end(trial: FrozenTrial, last_epoch: int) -> float:
    """A segment's validation accuracy after its interval's last epoch; -inf for one that
    stopped before it (its training diverged), which then ranks last."""
    return trial.intermediate_values.get(last_epoch, -math.inf)


def explored(donor: FrozenTrial, epoch: int, epochs: int, draw: random.Random) -> dict:
    """A change from the epoch after `epoch` on: the donor's learning rate, weight decay and
    augmentation strengths then, each times a factor drawn from FACTORS."""
    trained = config.from_dict(config_attrs.stored(donor), source=f"trial {donor.number}")
    now = config.phase_at(trained, epoch + 1)
    return {
        "start_fraction": epoch / epochs,
        "lr": now.lr * draw.choice(FACTORS),
        "weight_decay": now.weight_decay * draw.choice(FACTORS),
        "augment": perturbed(now.augment, lambda: draw.choice(FACTORS)),
    }


# The augmentation arguments that set how strong it is (or how much of a partner is mixed
# in): what explore perturbs, each with the most it may be (None: no limit). Whole numbers
# stay whole; an argument a config leaves to its default is left as it is.
STRENGTHS = {
    "rotate": {"degrees": 180.0}, "affine": {"degrees": 180.0, "translate": 1.0, "shear": 90.0},
    "perspective": {"distortion": 1.0}, "grayscale": {"p": 1.0}, "mask": {"p": 1.0},
    "jitter": {"brightness": None, "contrast": None, "saturation": None},
    "cutout": {"size": None}, "crop": {"padding": None},
    "mixup": {"alpha": None}, "cutmix": {"alpha": None},
}  # fmt: skip


def perturbed(spec: dict[str, dict[str, Any]], factor) -> dict[str, dict[str, Any]]:
    """An augmentation spec with each of its strengths times factor() (a draw for each)."""
    result = {}
    for name, arguments in spec.items():
        result[name] = dict(arguments)
        for argument, most in STRENGTHS.get(name, {}).items():
            if argument not in arguments:
                continue
            value = arguments[argument] * factor()
            value = round(value) if isinstance(arguments[argument], int) else value
            result[name][argument] = value if most is None else min(value, most)
    return result


def start_segment(trial: optuna.Trial, born: TrialConfig) -> TrialConfig | str:
    """At a segment's start: the config it trains (the space's, with its changes), or why it
    is not needed (its member already has a segment in its generation, numbered before it).
    A generation-0 trial becomes its own member."""
    planned = trial.user_attrs.get(keys.PBT)
    if planned is None:
        member = (spaces.lineage(trial) or [trial.number])[0]
        trial.set_user_attr(keys.PBT, {"generation": 0, "member": member, "donor": None,
                                  "changes": []})  # fmt: skip
        return born
    key = (planned["generation"], planned["member"])
    for other in trial.study.get_trials(deepcopy=False):
        if other.number >= trial.number or other.state == TrialState.FAIL:
            continue
        if generation_of(other) == key[0] and member_of(other) == key[1]:
            return (f"not needed: trial {other.number} already runs member {key[1]} in "
                    f"generation {key[0]}")  # fmt: skip
    return born.replace(changes=planned["changes"])


def stop_after(trial: optuna.Trial, population: Population) -> int:
    """The epoch a segment stops after: its generation's interval end."""
    return population.last_epoch(trial.user_attrs[keys.PBT]["generation"])


def kept(trials: list[FrozenTrial], size: int) -> set[int]:
    """The segments whose checkpoints a next generation goes on from: the newest generation's
    that stopped at their interval's end, and while that generation is still being queued
    (fewer than `size` of its segments are there) the generation before's too. A generation is
    queued one segment at a time: once its first is queued it is the newest, while the
    parents of the segments not yet queued are the generation before's; a worker that cleaned
    up in that window removed them, and their members retrained from scratch (issue 44). The
    last generation's complete: nothing goes on from them (--keep-checkpoints keeps the
    best)."""
    generations = [g for t in trials if (g := generation_of(t)) is not None]
    if not generations:
        return set()
    newest = max(generations)
    queued = sum(generation_of(t) == newest and t.state != TrialState.FAIL for t in trials)
    wanted = {newest} if queued >= size else {newest, newest - 1}
    return {t.number for t in trials
            if generation_of(t) in wanted and t.state == TrialState.PRUNED}  # fmt: skip


def lineage_rows(trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """Every segment as the report draws it: member, generation, trial, the trial it goes on
    from, the donor it copied (None: its own), its curve."""
    rows = []
    for trial in trials:
        if generation_of(trial) is None or trial.state not in ledger.FINISHED:
            continue
        attrs = trial.user_attrs[keys.PBT]
        rows.append({
            "trial": trial.number, "member": attrs["member"], "generation": attrs["generation"],
            "parent": trial.user_attrs.get(keys.CONTINUES, [None])[-1],
            "donor": attrs["donor"], "curve": dict(sorted(trial.intermediate_values.items())),
        })  # fmt: skip
    return rows


@dataclasses.dataclass
class PopulationScheduler(Scheduler):
    """A population's segments (--scheduler pbt): its next generation is queued when the last
    is complete, a worker waits for it rather than sample a member beyond the population's
    size, and each segment stops at its interval's end."""

    population: Population | None = None

    def next(self, study: optuna.Study) -> Next:
        """The next generation queued first, whatever the budget: a study resumed with more
        budget goes on with it."""
        self.population.plan(study)
        trials = study.get_trials(deepcopy=False)
        if ledger.reached(trials, self.target, self.epoch_budget) or self.population.done(trials):
            return Next.DONE
        return Next.START if self.population.has_work(trials) else Next.WAIT

    def claim(self, trial: optuna.Trial, trials: Sequence[FrozenTrial]) -> str | None:
        """A fresh trial (not a planned segment) is not needed with the population's size of
        generation 0's ahead of it."""
        if generation_of(trial) is not None:
            return super().claim(trial, trials)
        fresh = lambda other: generation_of(other) in (0, None)  # noqa: E731
        return self._behind(trial, trials, self.population.size, fresh)

    def start(self, trial: optuna.Trial, born: TrialConfig) -> TrialConfig:
        started = start_segment(trial, born)
        if isinstance(started, str):
            raise NotNeeded(started)
        return started

    def on_epoch(self, trial: optuna.Trial, curve: Sequence[float]) -> Decision:
        decision = super().on_epoch(trial, curve)
        if len(curve) == stop_after(trial, self.population):
            return Decision.STOP  # the interval is over
        return decision

    def ended(self, trial: optuna.Trial, decision: Decision, curve: Sequence[float]) -> str:
        if len(curve) == stop_after(trial, self.population):  # the next generation goes on
            return f"interval over after epoch {len(curve)}: the population exploits"
        return super().ended(trial, decision, curve)

    def keeps(self, trials: list[FrozenTrial], direction: StudyDirection) -> set[int]:
        return kept(trials, self.population.size)
