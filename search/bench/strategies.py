"""The strategies section: search strategies side by side at an equal budget, the way an HPO
researcher compares optimizers (Optuna's benchmarks/, Syne Tune's benchmarking): every
strategy searches the same space on the same data with the same workers for the same number
of epochs trained (what a GPU-hour buys, immune to the machine's noise), repeated over seeds,
and the spread is shown.

Each search is a real `search.run` in its own processes, as a user starts it, stopped by
--epoch-budget. From its study: the best validation accuracy found (among trials that trained
all their epochs) once 25%, 50% and 100% of the budget had been trained, the epochs it needed
to reach random search's final best, and the test accuracy of its winner retrained on
train+validation (the test set is read there only). Where in the budget a trial's epochs fell
is read from its start and end times, its epochs spread evenly between them: with several
workers, trials overlap."""

import bisect
import dataclasses
import datetime
import math
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from registry import UsageError
from search.bench.rows import Row
from search.training import config, data, trainer
from search.tuning.records import config_attrs, keys, ledger

# name -> the search.run flags of what users would pick instead, and ours; {population} and
# {source} are filled in by flags_of
STRATEGIES = {
    "random": ("--sampler", "random", "--pruner", "none"),  # random search, every trial to the end
    # TPESampler(), MedianPruner()
    "optuna-defaults": ("--sampler", "optuna-tpe", "--pruner", "optuna-median"),
    "asha": ("--sampler", "random", "--pruner", "sha"),  # Ray Tune's usual: random + ASHA, eta 4
    "default": (),  # whatever search.run does with no strategy flags
    # the default until 2026-12-06 (the replay chose mf-tpe with sha3), by name
    "tpe-hyperband": ("--sampler", "tpe", "--pruner", "hyperband"),
    "tpe-asha": ("--sampler", "tpe", "--pruner", "sha"),  # TPE fitted on ASHA's rungs
    "lce": ("--sampler", "random", "--pruner", "lce"),  # random + curve extrapolation
    "asha-lce": ("--sampler", "random", "--pruner", "sha-lce"),
    "mftpe-asha": ("--sampler", "mf-tpe", "--pruner", "sha"),  # BOHB's model on ASHA's rungs
    "mftpe-asha-lce": ("--sampler", "mf-tpe", "--pruner", "sha-lce"),
    "bohb": ("--sampler", "mf-tpe", "--pruner", "hyperband"),  # BOHB: its model and Hyperband
    "tpe-hyperband-pause": ("--sampler", "tpe", "--pruner", "hyperband", "--pause-pruned"),
    "asha-pause": ("--sampler", "random", "--pruner", "sha", "--pause-pruned"),
    # the default until 2026-12-07 (the replay chose the hybrid pruner, paused), by name
    "mftpe-sha3": ("--pruner", "sha3"),
    "mftpe-sha3-pause": ("--pruner", "sha3", "--pause-pruned"),
    # ASHA of the promotion type: a rung's trials wait, paused, until 3 have reached it
    "default-promotion": ("--pruner", "sha3-promotion", "--pause-pruned"),
    # the promotion type at epochs 1 and 3, and at every rung once a trial has finished (the
    # default's pruner, named)
    "default-hybrid": ("--pruner", "sha3-hybrid", "--pause-pruned"),
    # freeze-thaw: paused trials thawed by their curves' forecasts, not their rung values
    "default-thaw": ("--pause-pruned", "--thaw", "forecast"),
    "asha-thaw": ("--sampler", "random", "--pruner", "sha", "--pause-pruned", "--thaw", "forecast"),
    # warm-started from another task's study (the replay: the task before it in --tasks)
    "default-box": ("--warm-start-from", "{source}", "--warm-start-by", "box"),  # their box
    "default-prior": ("--warm-start-from", "{source}", "--warm-start-by", "prior"),  # as a prior
    # population-based training, its members filling the budget (members x --epochs)
    "pbt": ("--scheduler", "pbt", "--population", "{population}"),
    # the old default, warm-started from a study of other classes (--transfer-source-classes)
    "tpe-hyperband-warm": (
        "--sampler", "tpe", "--pruner", "hyperband", "--warm-start-from", "{source}",
        "--warm-start-top", "{top}", "--warm-start-by", "box",  # as measured on 2026-12-05
    ),
}  # fmt: skip
SOURCE_SEED = 100  # the warm start's earlier study: not one of the searches' seeds


def warm_started(strategy: str) -> bool:
    """Whether the strategy starts from an earlier study (its flags name {source})."""
    return "{source}" in STRATEGIES[strategy]


FRACTIONS = (0.25, 0.5, 1.0)
ROUNDING_SECONDS = 1e-6  # a trial's end and its last epoch's event, computed apart


@dataclasses.dataclass(frozen=True)
class Search:
    """One strategy's search at one seed, read from its study."""

    strategy: str
    seed: int
    seconds: float
    trials: int  # trials that trained (a continuation is a trial of its own)
    continued: int  # paused trials that a continuation took over and ran
    epochs: int  # epochs trained in all (a little over the budget: trials in flight finish)
    best: dict[float, float | None]  # budget fraction -> best validation accuracy by then
    curve: list[tuple[int, float]]  # (epochs trained, best so far) at each improvement
    winner: FrozenTrial | None  # the best trial within the budget
    test_accuracy: float | None = None  # its config retrained on train+val, on the test set

    def epochs_to_reach(self, value: float) -> int | None:
        return next((epochs for epochs, best in self.curve if best >= value), None)


def epoch_events(trials: list[FrozenTrial], started: datetime.datetime) -> list[float]:
    """When each trained epoch ended (seconds since `started`, the study's first trial's
    start): each trial's own epochs spread evenly over its run."""
    events = []
    for trial in trials:
        trained = ledger.epochs_reported(trial) - trial.user_attrs.get(keys.RESUMED_AFTER_EPOCH, 0)
        if not trained or trial.datetime_start is None or trial.datetime_complete is None:
            continue
        begin = (trial.datetime_start - started).total_seconds()
        length = (trial.datetime_complete - trial.datetime_start).total_seconds()
        events += [begin + length * (k + 1) / trained for k in range(trained)]
    return sorted(events)


@dataclasses.dataclass(frozen=True)
class Timeline:
    """A study's trained epochs in time (epoch_events), and where its trials' ends fell."""

    events: list[float]
    started: datetime.datetime  # its first trial's start: the events' zero

    @classmethod
    def of(cls, trials: list[FrozenTrial]) -> "Timeline":
        started = min(t.datetime_start for t in trials if t.datetime_start)
        return cls(epoch_events(trials, started), started)

    def finished_at(self, trial: FrozenTrial) -> float:
        return (trial.datetime_complete - self.started).total_seconds()

    def trained_by(self, trial: FrozenTrial) -> int:
        """The epochs trained in all when the trial finished, its own last one included."""
        return bisect.bisect_right(self.events, self.finished_at(trial) + ROUNDING_SECONDS)

    def reached(self, epochs: int) -> float:
        """When `epochs` epochs had been trained in all (never, if they were not)."""
        return self.events[epochs - 1] if len(self.events) >= epochs else math.inf


def read_search(
    strategy: str, seed: int, seconds: float, found: optuna.Study, budget: int, charged: int = 0
) -> Search:
    """One search's figures at `budget` epochs, `charged` of them spent before it began (a
    warm start's source study): its own epochs count from there, and a share of the budget
    that the charge alone exceeds has found nothing."""
    trials = found.get_trials(deepcopy=False)
    timeline = Timeline.of(trials)
    complete = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE),
        key=lambda t: t.datetime_complete,
    )

    def done_by(moment: float) -> list[FrozenTrial]:
        return [t for t in complete if timeline.finished_at(t) <= moment + ROUNDING_SECONDS]

    # The improvements within the budget only: a trial in flight that finished after it is
    # no part of what the budget bought (its epochs are capped at the budget where it ended
    # at the very moment the budget's last epoch did)
    def reached(epochs: int) -> float:  # when the search had spent `epochs`, its charge too
        return timeline.reached(epochs - charged) if epochs > charged else -math.inf

    curve, best = [], None
    for trial in done_by(reached(budget)):
        if best is None or trial.value > best.value:
            best = trial
            curve.append((min(charged + timeline.trained_by(trial), budget), trial.value))

    def best_at(fraction: float) -> FrozenTrial | None:
        done = done_by(reached(math.ceil(fraction * budget)))
        return max(done, key=lambda t: t.value, default=None)

    bests = {fraction: best_at(fraction) for fraction in FRACTIONS}
    return Search(
        strategy, seed, seconds,
        trials=sum(t.state in ledger.FINISHED for t in trials),
        continued=len(ledger.continuations_run(trials)),
        epochs=ledger.epochs_trained(trials),
        best={f: (t.value if t else None) for f, t in bests.items()},
        curve=curve, winner=bests[1.0],
    )  # fmt: skip


def run_study(
    bench, strategy: str, seed: int, folder: Path, flags: list[str],
    classes: str | None = None, budget: int | None = None,
) -> tuple[float, optuna.Study]:  # fmt: skip
    """One search.run of the section's space and budget, as a user types it, with the
    strategy's `flags` (its sampler, pruner, ...): its seconds and its study, named
    STRATEGY-SEED in the folder's strategies.db. `classes` and `budget` in place of the
    section's --strategy-classes and --strategy-budget."""
    args = bench.args
    classes = args.strategy_classes if classes is None else classes
    budget = args.strategy_budget if budget is None else budget
    name = f"{strategy}-{seed}"
    storage = f"sqlite:///{folder / 'strategies.db'}"
    command = [
        sys.executable, "-m", "search.run", "--space", args.strategy_space,
        "--dataset", args.dataset, "--data-dir", str(args.data_dir), "--device", args.device,
        "--epochs", str(args.strategy_epochs), "--epoch-budget", str(budget),
        "--trials", "100000", "--seed", str(seed), *flags,
        "--workers-per-gpu", str(args.strategy_workers), "--storage", storage, "--study", name,
        "--checkpoint-dir", str(folder / "checkpoints"), "--quiet",
    ]  # fmt: skip
    command += ["--fix", args.strategy_fix] if args.strategy_fix else []
    command += ["--classes", classes] if classes else []
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(
            f"the {strategy} search (seed {seed}) failed: {last}\n{shlex.join(command)}"
        )
    return seconds, optuna.load_study(study_name=name, storage=storage)


def flags_of(strategy: str, args, source: str) -> list[str]:
    """The strategy's search.run flags, its population sized to the budget and `source` as the
    study it warm-starts from."""
    population = args.strategy_budget // args.strategy_epochs
    return [
        flag.format(population=population, source=source, top=args.transfer_top)
        for flag in STRATEGIES[strategy]
    ]


def run_source(bench, folder: Path) -> str:
    """The earlier study a warm start starts from: the default strategy on
    --transfer-source-classes for --transfer-source-budget epochs; its name."""
    args = bench.args
    strategy = "source"
    run_study(
        bench, strategy, SOURCE_SEED, folder, flags_of("tpe-hyperband", args, ""),
        classes=args.transfer_source_classes, budget=args.transfer_source_budget,
    )  # fmt: skip
    return f"{strategy}-{SOURCE_SEED}"


def source_text(args, charged: bool = True) -> str:
    """The earlier study, as a row's flags name it (charged to the warm search's budget, or
    not: the transfer section leaves it out)."""
    charge = "charged to the warm search's" if charged else "not charged"
    return (f"(a study of --classes {args.transfer_source_classes}, budget "
            f"{args.transfer_source_budget} epochs, {charge})")  # fmt: skip


def retrained(bench, dataset: data.Dataset, winner: FrozenTrial) -> float:
    """The winner's config trained on train+validation, its accuracy on the test set."""
    chosen = config.from_dict(config_attrs.stored(winner), source=f"trial {winner.number}")
    result = trainer.train(
        chosen, dataset.train + dataset.val, dataset.test, dataset.num_classes,
        bench.on_device, eval_is_test=True,
    )  # fmt: skip
    return result.final.test_accuracy


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f}% ± {100 * deviation:.2f}"


def strategy_rows(bench) -> Iterator[Row]:
    """One row per strategy, at --strategy-repeats seeds each."""
    args = bench.args
    chosen = [name.strip() for name in args.strategies.split(",")]
    unknown = [name for name in chosen if name not in STRATEGIES]
    if unknown:
        raise UsageError(
            f"unknown strategy {', '.join(unknown)}; choose of {', '.join(STRATEGIES)}"
        )
    warm = any(warm_started(strategy) for strategy in chosen)
    if warm:
        check_classes_apart(args)
    classes = [c for c in args.strategy_classes.split(",") if c] if args.strategy_classes else []
    dataset = data.load(args.dataset, args.data_dir, classes=classes)
    reference = None  # random search's final best, mean over its seeds
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source = run_source(bench, folder) if warm else ""
        for strategy in run_order(chosen):
            flags = flags_of(strategy, args, source)
            searches = []
            for seed in range(args.strategy_repeats):
                seconds, found = run_study(bench, strategy, seed, folder, flags)
                search = read_search(strategy, seed, seconds, found, args.strategy_budget,
                                     charged=charge_of(strategy, args))  # fmt: skip
                accuracy = retrained(bench, dataset, search.winner) if search.winner else None
                searches.append(dataclasses.replace(search, test_accuracy=accuracy))
            finals = [s.best[1.0] for s in searches if s.best[1.0] is not None]
            if strategy == "random" and finals:
                reference = statistics.mean(finals)
            shown = " ".join(flags_of(strategy, args, source_text(args)))
            yield row_of(f"strategy: {strategy}", searches, reference, args, shown)


def charge_of(strategy: str, args) -> int:
    """The epochs a strategy spent before its search: a warm start's source study's. A user
    who has such a study paid for it once; a table that left it out (until 2026-12-06) gave
    the warm start those epochs free."""
    return args.transfer_source_budget if warm_started(strategy) else 0


def check_classes_apart(args) -> None:
    """A warm start's source study must not have searched the target's classes: with them it
    has already seen (and been chosen on) the validation images the table scores."""
    target = set(args.strategy_classes.split(",")) if args.strategy_classes else None
    source = set(args.transfer_source_classes.split(","))
    if target is None or target & source:
        raise UsageError(
            "the warm start's source study (--transfer-source-classes "
            f"{args.transfer_source_classes}) shares classes with the searches' "
            f"(--strategy-classes {args.strategy_classes or 'all'}); give them other classes"
        )


def run_order(chosen: list[str]) -> list[str]:
    """Random search first, wherever it is named: every other row's epochs to reach its final
    best need it (listed after another, that one's row had no reference)."""
    return sorted(chosen, key=lambda name: name != "random")


def row_of(
    what: str, searches: list[Search], reference: float | None, args, flags: str,
    reference_name: str = "random's",
) -> Row:  # fmt: skip
    """The row of one strategy's searches: the best found at each share of the budget, the
    epochs to reach the reference (random search's final best, unless `reference_name` says
    whose), the winners retrained on the test set; `flags`, the search.run flags it took."""
    at = {f: [s.best[f] for s in searches if s.best[f] is not None] for f in FRACTIONS}
    reached = [s.epochs_to_reach(reference) for s in searches] if reference else []
    hit = [epochs for epochs in reached if epochs is not None]
    reach = (f"{statistics.mean(hit):.0f} epochs ({len(hit)}/{len(searches)} reached)"
             if reference else "-")  # fmt: skip
    tests = [s.test_accuracy for s in searches if s.test_accuracy is not None]
    result = (
        f"best val at 25% {spread(at[0.25])}, 50% {spread(at[0.5])}, 100% {spread(at[1.0])}; "
        f"{reference_name} final best reached in {reach}; winner retrained: test "
        f"{spread(tests)}; "
        f"{statistics.mean(s.trials for s in searches):.0f} trials"
        + (
            f" ({sum(s.continued for s in searches)} continued in all)"
            if any(s.continued for s in searches)  # the default pauses too, unflagged
            else ""
        )
        + ", "
        f"{statistics.mean(s.seconds for s in searches):.0f} s a search"
    )
    setting = (
        f"{flags}; {args.strategy_space}, --epochs {args.strategy_epochs}, budget "
        f"{args.strategy_budget} epochs, {args.strategy_workers} worker(s), "
        f"{len(searches)} seed(s)"
    )
    figures = {
        "strategy": what.partition(": ")[2], "budget_epochs": args.strategy_budget,
        "reference_final": reference, "reference": reference_name,
        "searches": [
            {"seed": s.seed, "seconds": s.seconds, "trials": s.trials, "epochs": s.epochs,
             "continued": s.continued,
             "best_val": {str(f): v for f, v in s.best.items()},
             "epochs_to_reference": s.epochs_to_reach(reference) if reference else None,
             "winner": s.winner.number if s.winner else None, "test_accuracy": s.test_accuracy,
             "curve": s.curve}
            for s in searches
        ],
    }  # fmt: skip
    return Row(what, setting, result, None, figures)
