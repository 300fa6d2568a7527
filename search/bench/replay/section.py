"""The replay section (`search.bench --sections replay`): search strategies told apart on
recorded learning curves, hundreds of searches in minutes, where the live table affords five.
Each strategy is search.run's flags (bench/strategies.py's STRATEGIES), turned into a study's
settings as search.run turns them; each search replays them (simulator.py) against a
benchmark's curves at a budget of epochs, over tasks and seeds; figures.py says what is read
of them. A benchmark is LCBench's surrogate (lcbench.py, a task an OpenML dataset) or a table
of our own spaces' curves (recorded.py, one task). It loads no image dataset and trains
nothing."""

import dataclasses
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from registry import Registry, UsageError
from search.bench.replay import figures, lcbench, picture, recorded, simulator
from search.bench.rows import Row
from search.bench.strategies import SOURCE_SEED, STRATEGIES, warm_started

DEFAULT_STRATEGY = "default"
# --benchmark NAME[:ARGUMENT] -> its tasks, given the argument and --tasks (None: not given)
BENCHMARKS = Registry("benchmark")


@BENCHMARKS.register("lcbench")
def lcbench_tasks(argument: str, tasks: str | None) -> list:
    if argument:
        raise UsageError(f"--benchmark lcbench takes no ':{argument}'")
    names = tasks.split(",") if tasks else lcbench.DEVELOPMENT_TASKS
    return [lcbench.Surrogate(name.strip()) for name in names]


@BENCHMARKS.register("recorded")
def recorded_tasks(argument: str, tasks: str | None) -> list:
    if not argument:
        raise UsageError("--benchmark recorded:PATH names a recorded table's folder "
                         "(search.bench --sections record writes one)")  # fmt: skip
    if tasks:
        raise UsageError("--tasks names LCBench's tasks; a recorded table is one task")
    if not Path(argument).is_dir():
        raise UsageError(f"--benchmark recorded:{argument}: no such folder (search.bench "
                         "--sections record --record-to FOLDER writes one)")  # fmt: skip
    return [recorded.Table(argument)]


def tasks_of(benchmark: str, tasks: str | None) -> tuple:
    """The tasks --benchmark and --tasks name, each opened (and so checked)."""
    name, _, argument = benchmark.partition(":")
    return tuple(BENCHMARKS[name](argument, tasks))


@dataclasses.dataclass(frozen=True)
class ReplaySetting:
    """What the section replays: which tasks, strategies, seeds, budget and workers."""

    benchmark: str
    tasks: tuple  # lcbench.Surrogate or recorded.Table: each a space, its settings, curves
    strategies: tuple[str, ...]
    seeds: int
    budget: int  # in full-length trials
    workers: int
    picture: Path | None = None  # STEM: its .html (and .png) written, regret against epochs

    @property
    def epochs(self) -> int:
        return self.tasks[0].epochs

    def describe(self) -> str:
        return (f"{self.benchmark}, {len(self.tasks)} task(s), {self.seeds} seed(s), budget "
                f"{self.budget} full trials ({self.budget * self.epochs} epochs), "
                f"{self.workers} worker(s)")  # fmt: skip


def settings_of(strategy: str, task, seed: int, budget_epochs: int):
    """The study settings search.run would record for this strategy's flags, on the task's
    space (its --fix held): its strategy group as search.run checks it, the budget in epochs
    alone."""
    return planned(strategy, task, seed, budget_epochs)[0]


def planned(strategy: str, task, seed: int, budget_epochs: int, source=None):
    """settings_of's settings, and what a warm start queues (None: nothing), taken from the
    `source` study as search.run takes it from --warm-start-from's."""
    from search import run
    from search.tuning import study
    from search.tuning.strategies import transfer
    from search.tuning.strategies.strategy import StrategyOptions

    check_replayable(strategy)
    source_name = source.study_name if source is not None else ""
    filled = {"{source}": source_name, "{top}": str(transfer.DEFAULT_TOP)}
    flags = [filled.get(flag, flag) for flag in STRATEGIES[strategy]] + ["--seed", str(seed)]
    given = {**vars(run.get_args_parser().parse_args(flags)), "epochs": task.epochs}
    wanted = study.checked({
        "space": task.space, "dataset": task.dataset, "epochs": task.epochs, "trials": 10**9,
        "epoch_budget": budget_epochs, "checkpoint_dir": "replay",  # every curve is kept
        "fixed_params": task.fixed_params, **StrategyOptions.of(given).settings(given),
        "warm_start_from": source_name if warm_started(strategy) else "",
    })  # fmt: skip
    if not wanted.warm_start_from:
        return wanted, None
    ranges = {}  # the space's, as the earlier study's trials suggested them: one space
    for trial in source.get_trials(deepcopy=False):
        ranges.update(trial.distributions)
    transferred = transfer.plan(source, wanted, ranges, given["warm_start_top"],
                                pinned=task.fixed_params)  # fmt: skip
    return transfer.born_with(
        wanted, transferred, transfer.WarmStartOptions.of(given).guide
    ), transferred


def check_replayable(strategy: str) -> None:
    if strategy not in replayable():
        raise UsageError(f"--strategies: {strategy!r} cannot be replayed; choose from "
                         f"{', '.join(replayable())}")  # fmt: skip


def replayable() -> list[str]:
    """The strategies whose flags need nothing but the curves and, for a warm start, another
    task's search (not PBT: no recorded curve knows a changed configuration's future)."""
    return [name for name, flags in STRATEGIES.items() if "{population}" not in flags]


def check_strategies(strategies, tasks: tuple) -> None:
    for name in strategies:
        check_replayable(name)
        if warm_started(name) and len(tasks) < 2:
            raise UsageError(f"--strategies: {name!r} starts from a search of another task; "
                             "name two or more --tasks of LCBench")  # fmt: skip


def source_of(task, tasks: tuple) -> object:
    """The task whose search a warm start on `task` starts from: the one before it in
    --tasks (the last for the first), as a user's earlier study on another dataset."""
    return tasks[tasks.index(task) - 1]


def run_one(
    strategy: str, task, seed: int, setting: ReplaySetting, scale: figures.Reference, source=None
):  # fmt: skip
    budget = setting.budget * task.epochs
    settings, transferred = planned(strategy, task, seed, budget, source)
    replayed = simulator.replay(
        settings, task.suggest, task.curve, setting.workers, f"{strategy}-{task.task}-{seed}",
        queued=transferred,
    )  # fmt: skip
    best = {f: replayed.best_by(f * budget) for f in figures.FRACTIONS}
    final = best[1.0]
    return figures.Run(
        strategy, task.task, seed, best,
        epochs_to_own_best=replayed.epochs_to_reach(final) if final is not None else None,
        regret={f: scale.regret(value) for f, value in best.items()},
        improvements=tuple((c.epochs, c.value) for c in replayed.completions
                           if c.epochs <= budget),
    ), replayed  # fmt: skip


def section(setting: ReplaySetting) -> Iterator[Row]:
    """A row a strategy, each over every task and seed."""
    check_strategies(setting.strategies, setting.tasks)
    sources = {}  # (task, seed) -> the default's search there, a warm start's earlier study
    # what a live worker says of each trial (a rung's promotion, ...): thousands of lines here
    logging.getLogger("search").setLevel(logging.WARNING)
    started = time.perf_counter()
    runs, seconds, distances, scales = [], {}, {}, {}
    tables = {}  # a recorded table's fidelity (recorded.py); LCBench's surrogate has a curve
    # for every configuration and looks up no neighbour
    for task in setting.tasks:
        scale = scales[task.task] = task.reference()
        for strategy in setting.strategies:
            looked_up = len(task.distances())
            for seed in range(setting.seeds):
                source = earlier_study(sources, strategy, task, seed, setting)
                run, replayed = run_one(strategy, task, seed, setting, scale, source)
                runs.append(run)
                seconds.setdefault(strategy, []).append(replayed.seconds)
            distances.setdefault(strategy, []).extend(task.distances()[looked_up:])
        if task.distances():
            tables[task.task] = task.fidelity()
            print(f"replay: table {task.task}: a recorded configuration's nearest other one "
                  f"at median distance {tables[task.task]['spread']:.2f}, their last "
                  f"accuracies' rank correlation {tables[task.task]['loo_spearman']:.2f}",
                  flush=True)  # fmt: skip
    rows = figures.summary(runs, DEFAULT_STRATEGY)
    took = time.perf_counter() - started
    if setting.picture:
        lines = picture.regret_lines(runs, scales, setting.budget * setting.epochs)
        written = picture.write(setting.picture, lines, setting.describe())
        print(f"replay: the picture in {', '.join(map(str, written))}"
              + ("" if len(written) > 1 else " (no PNG: matplotlib, pip install -e "
                 "'.[lcbench]')"), flush=True)  # fmt: skip
    for row in rows:
        row["simulated_hours"] = sum(seconds[row["strategy"]]) / 3600
        if distances[row["strategy"]]:  # a recorded table: how near its curves were
            row["neighbour_distance"] = neighbour_figures(distances[row["strategy"]])
            row["recorded_tables"] = tables
        regret = " / ".join(f"{row['regret'][str(f)]:.3f}" for f in figures.FRACTIONS)
        yield Row(
            f"replay: {row['strategy']}", setting.describe(),
            f"normalized regret at 25/50/100%: {regret}; mean rank {row['mean_rank']:.2f}",
            None, {**row, "section_seconds": took},
        )  # fmt: skip


def earlier_study(sources: dict, strategy: str, task, seed: int, setting: ReplaySetting):
    """For a warm start: the default's search of the task before this one, at another seed
    (SOURCE_SEED on), its whole budget; searched once for every strategy that needs it. Not
    charged to the warm start's budget: it stands for a study the user already had of
    another dataset. None for a strategy that starts cold."""
    if not warm_started(strategy):
        return None
    earlier = source_of(task, setting.tasks)
    key = (earlier.task, seed)
    if key not in sources:
        budget = setting.budget * earlier.epochs
        settings = settings_of(DEFAULT_STRATEGY, earlier, SOURCE_SEED + seed, budget)
        sources[key] = simulator.replay(
            settings, earlier.suggest, earlier.curve, setting.workers,
            f"{DEFAULT_STRATEGY}-{earlier.task}-{SOURCE_SEED + seed}",
        ).study  # fmt: skip
    return sources[key]


def neighbour_figures(distances: list[float]) -> dict:
    """How far the configurations a strategy looked up were from the recorded ones whose
    curves they got (recorded.py's normalized distance, 0 to 1)."""
    ordered = sorted(distances)
    return {"median": statistics.median(ordered), "p90": ordered[int(0.9 * (len(ordered) - 1))],
            "looked_up": len(ordered)}  # fmt: skip
