"""search.bench's measurements, side by side in one run on one machine:

1. ResNet-18 (CIFAR stem) through the plain pipeline (baseline.py), seconds per
   epoch;
2. the same network through our trainer at each --batch-sizes, seconds per epoch;
3. the `fast` space's default config (its airbench94 warm start): training seconds for its
   epochs and test accuracy, mean over --seeds; with `ablation`, also that config with each of
   airbench94's ingredients taken out in turn (one seed each);
4. a short search (search.run in its own processes) at each --workers-per-gpu: trials per
   hour, fraction pruned, best validation accuracy, how busy the GPU was;
each with its speed-up over the plain pipeline; and, apart:
5. `ops`: the operators (and kernels) one training step dispatches (op_count.py), for
   ResNet-18 at batch 64, the fast warm start and a sampled config of each space;
6. `bookkeeping`: what a trial costs beside its training as the study grows (bookkeeping.py),
   for `fast` and `resnet`, and what a trial's start and evaluation take.
The same code runs at tiny sizes on a CPU. SECTIONS lists them in the order they run; each
yields its rows as it measures them, and search.bench writes each as it comes (a section cut
off by a timeout keeps the rows it had measured).
"""

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import optuna
import torch
import torchvision

import spaces
from registry import UsageError
from search.bench import (
    baseline,
    bookkeeping,
    op_count,
    pareto,
    strategies,
    utilization,
    warm_start,
)
from search.bench.replay import recording
from search.bench.rows import Row
from search.training import data, device, trainer
from search.training.config import TrialConfig, validate
from search.training.data import LabeledImages
from search.training.trainer import TrainResult, train
from search.tuning.execution import environment
from search.tuning.records import ledger


@dataclasses.dataclass(frozen=True)
class Bench:  # frozen fields; `measured` fills in as sections end
    """What every section reads: the data, the device and the sizes chosen on the CLI."""

    args: argparse.Namespace
    dataset: data.Dataset
    train_set: LabeledImages  # the official training set (train + val), or its first --images
    on_device: torch.device
    batch_sizes: list[int]  # --batch-sizes, parsed
    workers_per_gpu: list[int]  # --workers-per-gpu, parsed
    # figures later sections compare with: the plain pipeline's seconds per epoch, the fast
    # config's training seconds (absent when their section did not run or failed)
    measured: dict = dataclasses.field(default_factory=dict)

    @property
    def resnet18_args(self) -> dict:
        return {"depth": 18, "width": self.args.width, "block": "original"}

    def train(self, config: TrialConfig) -> TrainResult:
        """Train on the training set, measured on the test set every epoch."""
        return train(
            config, self.train_set, self.dataset.test, self.dataset.num_classes, self.on_device,
            eval_is_test=True, compile_model=self.args.compile,
        )  # fmt: skip


def images_per_second(images: int, seconds: float) -> str:
    return f"{images / seconds:,.0f} img/s"


def plain_rows(bench: Bench) -> list[Row]:
    epochs = baseline.train_epochs(
        bench.train_set, bench.resnet18_args, bench.dataset.num_classes, bench.on_device,
        bench.args.loader_workers, bench.args.epochs,
    )  # fmt: skip
    seconds = statistics.mean(epoch.seconds for epoch in epochs[1:])
    bench.measured["plain_seconds"] = seconds
    images = len(bench.train_set) // baseline.BATCH_SIZE * baseline.BATCH_SIZE
    return [
        Row(
            "ResNet-18, plain DataLoader",
            f"PIL transforms, {bench.args.loader_workers} workers, fp32, batch "
            f"{baseline.BATCH_SIZE}",
            f"{seconds:.2f} s/epoch ({images_per_second(images, seconds)})",
            1.0,
            {"seconds_per_epoch": seconds, "train_loss": epochs[-1].train_loss},
        )
    ]


def over_plain(bench: Bench, seconds: float) -> float | None:
    """The speed-up of `seconds` over the plain pipeline's epoch, if that was measured."""
    plain = bench.measured.get("plain_seconds")
    return plain / seconds if plain else None


def resnet18_config(bench: Bench, batch_size: int) -> TrialConfig:
    return validate(TrialConfig(
        model="resnet", model_args=bench.resnet18_args, optimizer="sgd",
        optimizer_args={"momentum": 0.9, "nesterov": True}, lr=0.05, weight_decay=5e-4,
        schedule="cosine", batch_size=batch_size, epochs=bench.args.epochs,
        augment={"flip": {}, "crop": {"padding": bench.train_set.images.shape[-1] // 8}},
        dataset=bench.dataset.name,
    ))  # fmt: skip


def trainer_rows(bench: Bench) -> Iterator[Row]:
    for batch_size in bench.batch_sizes:
        result = bench.train(resnet18_config(bench, batch_size))
        seconds = statistics.mean(epoch.train_seconds for epoch in result.history[1:])
        compiled = f", compiled in {result.compile_seconds:.0f} s" if bench.args.compile else ""
        yield Row(
            "ResNet-18, our trainer",
            f"data and augmentation on the {bench.on_device.type}, batch {batch_size}" + compiled,
            f"{seconds:.2f} s/epoch ({images_per_second(result.images_per_epoch, seconds)})",
            over_plain(bench, seconds),
            {
                "batch_size": batch_size,
                "seconds_per_epoch": seconds,
                "compile_seconds": result.compile_seconds,
            },
        )


PROFILED_STEPS = (10, 20)  # steps run before the profiler's window, steps in it


def profile_rows(bench: Bench) -> list[Row]:
    batch_size = max(bench.batch_sizes)
    state = trainer.start_training(
        resnet18_config(bench, batch_size), bench.train_set, bench.dataset.test,
        bench.dataset.num_classes, bench.on_device, compile_model=bench.args.compile,
    )  # fmt: skip
    trainer.start_stepping(state)
    warm_up, active = PROFILED_STEPS
    steps = iter(trainer.batches(state, warm_up + active))
    fraction, table = utilization.profiled_gpu_busy(
        lambda: trainer.train_step(state, next(steps), 1), warm_up, active
    )
    row = Row(
        "ResNet-18, our trainer, profiled",
        f"batch {batch_size}, {active} steps under torch.profiler after {warm_up}",
        f"GPU busy {fraction:.0%} from its first operation to its last",
        None,
        {"batch_size": batch_size, "gpu_busy": fraction, "steps": active},
        detail=table,
    )
    return [row]


def fast_config(bench: Bench) -> TrialConfig:
    """The fast space's default: its airbench94 warm start, for --fast-epochs epochs."""
    context = spaces.SpaceContext(bench.dataset.name, bench.args.fast_epochs, seed=0)
    params = spaces.warm_starts("fast")[0].params
    chosen = validate(spaces.get("fast")(optuna.trial.FixedTrial(params), context))
    if bench.args.fast_width:
        chosen = chosen.replace(model_args={**chosen.model_args, "width": bench.args.fast_width})
    return chosen


def fast_rows(bench: Bench) -> list[Row]:
    """Trained on the whole training set and measured on the test set, as airbench is."""
    config = fast_config(bench)
    if bench.on_device.type == "cuda":
        # Untimed, with a seed not timed below: pays for CUDA's lazy start and cuDNN's tuning.
        bench.train(config.replace(seed=bench.args.seeds, epochs=1))
    results = [bench.train(config.replace(seed=seed)) for seed in range(bench.args.seeds)]
    seconds = [sum(epoch.train_seconds for epoch in result.history) for result in results]
    accuracies = [result.final.test_accuracy for result in results]
    spread = f" ({min(accuracies):.2%} to {max(accuracies):.2%})" if len(results) > 1 else ""
    mean_seconds = bench.measured["fast_seconds"] = statistics.mean(seconds)
    row = Row(
        "fast space, default config",
        f"fastnet width {config.model_args['width']}, {config.epochs} epochs, batch "
        f"{config.batch_size}, TTA {config.tta}, mean of {len(results)} seed(s)",
        f"{mean_seconds:.2f} s training, test accuracy {statistics.mean(accuracies):.2%}{spread}",
        over_plain(bench, mean_seconds),
        {"training_seconds": seconds, "test_accuracy": accuracies, "epochs": config.epochs},
    )
    return [row]


def without_alternating_flip(config: TrialConfig) -> TrialConfig:
    augment = {("flip" if name == "alternating_flip" else name): arguments
               for name, arguments in config.augment.items()}  # fmt: skip
    return config.replace(augment=augment)


# airbench94's ingredients in the fast warm start, each taken out in turn: name -> (what is
# done instead, the config that does it). The schedule before airbench's triangle was a linear
# warm-up from ~0 over 23% of the steps, then a linear decay to 0; the decay before the
# decoupled one gave torch weight_decay_per_1024 / kilo-steps, lr x batch / lr_per_1024 weaker.
ABLATIONS: dict[str, tuple[str, Callable[[TrialConfig], TrialConfig]]] = {
    "decoupled weight decay": (
        "decay 680x weaker, as before the fix",
        lambda c: c.replace(weight_decay=c.weight_decay * c.lr / c.batch_size),
    ),
    "64x lr on BatchNorm biases": ("one lr for all", lambda c: c.replace(param_groups={})),
    "Dirac init": ("PyTorch's default init", lambda c: c.replace(init="default")),
    "lookahead": ("no weight averaging", lambda c: c.replace(averaging="none")),
    "alternating flip": ("random flips", without_alternating_flip),
    "whitening bias freeze": ("the bias trains throughout", lambda c: c.replace(freeze={})),
    "triangle schedule": (
        "linear warm-up from 0 over 23%, linear decay to 0",
        lambda c: c.replace(
            schedule="polynomial", schedule_args={"power": 1.0}, warmup_fraction=0.23
        ),  # fmt: skip
    ),
    "TTA weights": (
        "six views weighted equally",
        lambda c: c.replace(tta_args={"translate_weight": 4 / 6}),
    ),
}


def ablation_rows(bench: Bench) -> Iterator[Row]:
    """The fast config at seed 0, then with each of ABLATIONS applied (one seed each): what
    each of airbench's ingredients is worth here, in test accuracy."""
    config = fast_config(bench)
    full = bench.train(config).final.test_accuracy
    yield Row(
        "fast space, default config, seed 0", "all of airbench94's ingredients",
        f"test accuracy {full:.2%}", None, {"test_accuracy": full},
    )  # fmt: skip
    for ingredient, (instead, change) in ABLATIONS.items():
        accuracy = bench.train(change(config)).final.test_accuracy
        yield Row(
            f"fast, without {ingredient}", instead,
            f"test accuracy {accuracy:.2%} ({100 * (accuracy - full):+.2f} points)", None,
            {"ingredient": ingredient, "test_accuracy": accuracy, "change": accuracy - full},
        )  # fmt: skip


def timed_search(bench: Bench, workers: int, storage: str) -> dict:
    """One search.run in its own processes, as a user starts it; its wall time and outcome.
    On a --search-storage that holds the study already, it resumes it (to --search-trials
    in all): the figures are of the trials this run finished."""
    name = f"bench-{bench.args.search_space}-{workers}"
    try:
        before = len(optuna.load_study(study_name=name, storage=storage).get_trials(
            deepcopy=False, states=ledger.FINISHED))  # fmt: skip
    except KeyError:  # not created yet
        before = 0
    command = [
        sys.executable, "-m", "search.run", "--space", bench.args.search_space,
        "--dataset", bench.dataset.name, "--data-dir", str(bench.args.data_dir),
        "--trials", str(bench.args.search_trials), "--epochs", str(bench.args.search_epochs),
        "--workers-per-gpu", str(workers), "--device", bench.args.device,
        "--storage", storage, "--study", name, "--quiet",
    ]  # fmt: skip
    if bench.args.search_timeout:
        command += ["--timeout", str(bench.args.search_timeout)]
    if bench.args.compile:
        command += ["--compile", bench.args.compile]
    with utilization.UtilizationSampler() as sampler:
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if finished.returncode != 0:
        last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"the search with --workers-per-gpu {workers} failed: {last}")
    found = optuna.load_study(study_name=name, storage=storage)
    everything = found.get_trials(deepcopy=False, states=ledger.FINISHED)
    trials = sorted(everything, key=lambda t: t.datetime_complete)[before:]
    best = ledger.best(found)
    return {
        "workers_per_gpu": workers,
        "study": name,
        "seconds": seconds,
        "trials": len(trials),
        "trials_in_study": len(everything),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
        / max(1, len(trials)),
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "best_val_accuracy": best.value if best else None,
        "gpu_busy": sampler.mean,
    }


def search_rows(bench: Bench) -> Iterator[Row]:
    with tempfile.TemporaryDirectory() as folder:
        storage = bench.args.search_storage or f"sqlite:///{Path(folder) / 'search.db'}"
        for workers in bench.workers_per_gpu:
            run = timed_search(bench, workers, storage)
            per_hour = run["trials"] / run["seconds"] * 3600
            busy = "n/a" if run["gpu_busy"] is None else f"{run['gpu_busy']:.0%}"
            best = run["best_val_accuracy"]
            plain = bench.measured.get("plain_seconds")
            yield Row(
                f"{bench.args.search_space} search",
                f"--workers-per-gpu {workers}, {run['trials']} trials "
                f"({run['trials_in_study']} in the study), --epochs "
                f"{bench.args.search_epochs}",
                f"{per_hour:,.0f} trials/h in {run['seconds']:.0f} s, {run['pruned']:.0%} "
                f"pruned, best val {'-' if best is None else f'{best:.2%}'}, GPU busy {busy}",
                run["epochs"] / run["seconds"] * plain if plain else None,
                {**run, "trials_per_hour": per_hour},
            )


def sampled_config(bench: Bench, space: str) -> TrialConfig:
    """The first config Optuna's RandomSampler (seed 0) draws from `space`."""
    context = spaces.SpaceContext(bench.dataset.name, bench.args.search_epochs, seed=0)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    return validate(spaces.get(space)(trial, context))


OPS_STEPS = 5  # counted steps per config: lookahead averages every 5


def ops_rows(bench: Bench) -> Iterator[Row]:
    """Operators per real training step (op_count.py) of ResNet-18 at batch 64, the fast warm
    start and one sampled config of every space that trains from scratch."""
    configs = [("ResNet-18, batch 64", resnet18_config(bench, 64)),
               ("fast warm start", fast_config(bench))]  # fmt: skip
    configs += [(f"{space}, sampled", sampled_config(bench, space))
                for space in spaces.list_spaces() if space not in spaces.FINE_TUNING]  # fmt: skip
    for what, config in configs:
        state = trainer.start_training(
            config, bench.train_set, bench.dataset.test, bench.dataset.num_classes,
            bench.on_device,
        )  # fmt: skip
        count = op_count.count_step_operators(state, OPS_STEPS)
        yield Row(
            f"operators per step: {what}",
            f"{config.model} {config.model_args}, {config.optimizer}, batch "
            f"{state.batch_size}, augment {', '.join(config.augment) or 'none'}, "
            f"averaging {config.averaging}",
            f"{count.operators:.0f} operators, {count.kernels:.0f} kernels, "
            f"{count.syncs:.0f} host syncs",
            None,
            {"config": config.to_dict(), **count.as_dict()},
        )  # fmt: skip


def bookkeeping_rows(bench: Bench) -> Iterator[Row]:
    """What a `fast` and a `resnet` trial cost beside their training as the study grows to
    --bookkeeping-trials (bookkeeping.py), on --search-storage or a new SQLite file; and what
    the fast warm start's trial spends starting (data to the device, model, whitening fit)
    and evaluating, on the bench's device. Shares are of the fast section's training time,
    when it ran."""
    trials, epochs = bench.args.bookkeeping_trials, bench.args.search_epochs
    fast_seconds = bench.measured.get("fast_seconds")
    with tempfile.TemporaryDirectory() as folder:
        storage = bench.args.search_storage or f"sqlite:///{Path(folder) / 'bookkeeping.db'}"
        for space in ("fast", "resnet"):
            for window in bookkeeping.measure(
                space, storage, trials, epochs, every=trials // 5 or 1
            ):
                share = f", {window.total / 1000 / fast_seconds:.1%} of the fast training" if (
                    fast_seconds and space == "fast") else ""  # fmt: skip
                yield Row(
                    f"bookkeeping per trial: {space}",
                    f"trials up to {window.trials}, {epochs} epochs, TPE + Hyperband",
                    f"{window.total:.0f} ms: ask {window.ask:.0f}, suggest "
                    f"{window.suggest:.0f}, reports {window.report:.0f}, tell "
                    f"{window.tell:.0f}, collect {window.collect:.0f}{share}",
                    None,
                    {"space": space, **dataclasses.asdict(window), "total": window.total},
                )  # fmt: skip
    config = fast_config(bench)
    device.synchronize(bench.on_device)
    started = time.perf_counter()
    state = trainer.start_training(config, bench.train_set, bench.dataset.test,
                                   bench.dataset.num_classes, bench.on_device)  # fmt: skip
    device.synchronize(bench.on_device)
    start_seconds = time.perf_counter() - started
    trainer.evaluate(state)  # untimed: the first evaluation pays for cuDNN's tuning
    started = time.perf_counter()
    trainer.evaluate(state)
    evaluation_seconds = time.perf_counter() - started
    yield Row(
        "fast trial, beside its steps",
        f"{len(bench.train_set)} training and {len(bench.dataset.test)} evaluation images, "
        f"TTA {config.tta}",
        f"start (data to the {bench.on_device.type}, model, whitening fit) "
        f"{start_seconds:.2f} s; one evaluation {evaluation_seconds:.2f} s",
        None,
        {"start_seconds": start_seconds, "evaluation_seconds": evaluation_seconds},
    )  # fmt: skip


FOOTNOTE = (
    "Speed-up over the plain pipeline: its seconds per epoch divided by a ResNet-18 row's; "
    "by the fast config's whole training; for a search, the epochs it trained per second "
    "(all trials, all workers) times the plain pipeline's seconds per epoch."
)


TABLE_HEADER = "| what | setting | result | speed-up |\n| --- | --- | --- | --- |"


def format_row(row: Row) -> str:
    speedup = "" if row.speedup is None else f"{row.speedup:.1f}x"
    return f"| {row.what} | {row.setting} | {row.result} | {speedup} |"


def format_table(rows: list[Row]) -> str:
    return "\n".join([TABLE_HEADER, *map(format_row, rows)])


def describe_machine(on_device: torch.device) -> str:
    return (
        f"{device.describe(on_device)}, {os.cpu_count()} CPU cores, {platform.system()}; "
        f"torchvision {torchvision.__version__}, {environment.describe_software()}"
    )


# search.bench's sections in the order they run: each gives its rows, those of several
# measurements one by one as each ends (scale.py runs the `workers` section apart, with
# no data or device); `profile` needs CUDA.
def replay_rows(setting) -> Iterable[Row]:
    """--strategies replayed on recorded learning curves (replay/): no data, no device; its
    setting (section.ReplaySetting) stands where the others' Bench does."""
    from search.bench.replay import section

    return section.section(setting)


SECTIONS: dict[str, Callable[[Bench], Iterable[Row]]] = {
    "plain": plain_rows,
    "trainer": trainer_rows,
    "profile": profile_rows,
    "fast": fast_rows,
    "ablation": ablation_rows,
    "ops": ops_rows,
    "bookkeeping": bookkeeping_rows,
    "search": search_rows,
    "strategies": strategies.strategy_rows,
    "pareto": pareto.pareto_rows,
    "transfer": warm_start.transfer_rows,
    "record": recording.record_rows,
    "replay": replay_rows,
}


def prepare(
    args: argparse.Namespace, sections: list[str], batch_sizes: list[int],
    workers_per_gpu: list[int],
) -> Bench:  # fmt: skip
    """The data (the whole official training set, or a seeded --images of it) and the device."""
    on_device = device.resolve(args.device)
    if "profile" in sections and on_device.type != "cuda":
        raise UsageError("--profile measures how busy the GPU is: it needs CUDA (--device)")
    dataset = data.load(args.dataset, args.data_dir)
    train_set = dataset.train + dataset.val
    if args.images:
        chosen = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))
        train_set = train_set.subset(chosen[: args.images])
    return Bench(args, dataset, train_set, on_device, batch_sizes, workers_per_gpu)
