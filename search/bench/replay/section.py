"""The replay section (`search.bench --sections replay`): search strategies told apart on
recorded learning curves, hundreds of searches in minutes, where the live table affords five.
Each strategy is search.run's flags (bench/strategies.py's STRATEGIES), turned into a study's
settings as search.run turns them; each search replays them (simulator.py) against a
benchmark's curves (lcbench.py) at a budget of epochs, over tasks and seeds; figures.py says
what is read of them. It loads no image dataset and trains nothing."""

import dataclasses
import time
from collections.abc import Iterator

from registry import UsageError
from search.bench.replay import figures, lcbench, simulator
from search.bench.rows import Row
from search.bench.strategies import STRATEGIES

REFERENCE_SAMPLE = 2000  # random configurations a task's regret is scaled by
DEFAULT_STRATEGY = "default"


@dataclasses.dataclass(frozen=True)
class ReplaySetting:
    """What the section replays: which tasks, strategies, seeds, budget and workers."""

    tasks: tuple[str, ...]
    strategies: tuple[str, ...]
    seeds: int
    budget: int  # in full-length trials
    workers: int

    def describe(self) -> str:
        return (f"lcbench {len(self.tasks)} task(s), {self.seeds} seed(s), budget "
                f"{self.budget} full trials ({self.budget * lcbench.EPOCHS} epochs), "
                f"{self.workers} worker(s)")  # fmt: skip


def settings_of(strategy: str, task: str, seed: int, budget_epochs: int):
    """The study settings search.run would record for this strategy's flags, on LCBench's
    curves: its strategy group as search.run checks it, the budget in epochs alone."""
    from search import run
    from search.tuning import study
    from search.tuning.strategies.strategy import StrategyOptions

    check_replayable(strategy)
    flags = [*STRATEGIES[strategy], "--seed", str(seed)]
    given = {**vars(run.get_args_parser().parse_args(flags)), "epochs": lcbench.EPOCHS}
    return study.checked({
        "space": "lcbench", "dataset": task, "epochs": lcbench.EPOCHS, "trials": 10**9,
        "epoch_budget": budget_epochs, "checkpoint_dir": "replay",  # every curve is kept
        **StrategyOptions.of(given).settings(given),
    })  # fmt: skip


def check_replayable(strategy: str) -> None:
    if strategy not in replayable():
        raise UsageError(f"--strategies: {strategy!r} cannot be replayed; choose from "
                         f"{', '.join(replayable())}")  # fmt: skip


def replayable() -> list[str]:
    """The strategies whose flags need nothing but the curves (not PBT: no recorded curve
    knows a changed configuration's future; not a warm start: it needs an earlier study)."""
    return [name for name, flags in STRATEGIES.items() if "{" not in " ".join(flags)]


def reference(surrogate: lcbench.Surrogate) -> figures.Reference:
    """The task's scale: a seeded random sample of configurations trained to the end."""
    import optuna

    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler, storage=optuna.storages.InMemoryStorage())
    configs = [lcbench.suggest(study.ask()) for _ in range(REFERENCE_SAMPLE)]
    finals = sorted(curve.val_accuracy[-1] for curve in surrogate.curves(configs))
    return figures.Reference(best=finals[-1], median=finals[len(finals) // 2])


def run_one(strategy: str, task: str, seed: int, setting: ReplaySetting, surrogate, scale):
    budget = setting.budget * lcbench.EPOCHS
    replayed = simulator.replay(
        settings_of(strategy, task, seed, budget), lcbench.suggest, surrogate.curve,
        setting.workers, f"{strategy}-{task}-{seed}",
    )  # fmt: skip
    best = {f: replayed.best_by(f * budget) for f in figures.FRACTIONS}
    final = best[1.0]
    return figures.Run(
        strategy, task, seed, best,
        epochs_to_own_best=replayed.epochs_to_reach(final) if final is not None else None,
        regret={f: scale.regret(value) for f, value in best.items()},
        improvements=tuple((c.epochs, c.value) for c in replayed.completions
                           if c.epochs <= budget),
    ), replayed  # fmt: skip


def section(setting: ReplaySetting) -> Iterator[Row]:
    """A row a strategy, each over every task and seed."""
    for name in setting.strategies:
        check_replayable(name)
    started = time.perf_counter()
    runs, seconds = [], {}
    for task in setting.tasks:
        surrogate = lcbench.Surrogate(task)
        scale = reference(surrogate)
        for strategy in setting.strategies:
            for seed in range(setting.seeds):
                run, replayed = run_one(strategy, task, seed, setting, surrogate, scale)
                runs.append(run)
                seconds.setdefault(strategy, []).append(replayed.seconds)
    rows = figures.summary(runs, DEFAULT_STRATEGY)
    took = time.perf_counter() - started
    for row in rows:
        row["simulated_hours"] = sum(seconds[row["strategy"]]) / 3600
        regret = " / ".join(f"{row['regret'][str(f)]:.3f}" for f in figures.FRACTIONS)
        yield Row(
            f"replay: {row['strategy']}", setting.describe(),
            f"normalized regret at 25/50/100%: {regret}; mean rank {row['mean_rank']:.2f}",
            None, {**row, "section_seconds": took},
        )  # fmt: skip
