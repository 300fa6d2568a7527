"""`python -m search.bench`: how fast trials train, side by side in one run on one machine.

1. ResNet-18 (CIFAR stem) through the plain pipeline (search/baseline.py), seconds per epoch;
2. the same network through our trainer at each --batch-sizes, seconds per epoch;
3. the `fast` space's default config (its airbench94 warm start): training seconds for its
   epochs and test accuracy, mean over --seeds;
4. a short search (search.run in its own processes) at each --workers-per-gpu: trials per
   hour, fraction pruned, best validation accuracy, how busy the GPU was;
each with its speed-up over the plain pipeline. The same command runs at tiny sizes on a CPU.
"""

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import torch
import torchvision

import spaces
from search import baseline, cli, data, device, environment, progress, utilization
from search.config import TrialConfig
from search.data import LabeledImages
from search.errors import UsageError
from search.train import TrainResult, train

SECTIONS = ("plain", "trainer", "fast", "search")


@dataclasses.dataclass(frozen=True)
class Row:
    what: str
    setting: str
    result: str
    speedup: float | None  # over the plain pipeline, as the table's footnote defines per row
    figures: dict  # the raw measurements, for --json


@dataclasses.dataclass(frozen=True)
class Bench:
    """What every section reads: the data, the device and the sizes chosen on the CLI."""

    args: argparse.Namespace
    dataset: data.Dataset
    train_set: LabeledImages  # the official training set (train + val), or its first --images
    on_device: torch.device
    batch_sizes: list[int]  # --batch-sizes, parsed
    workers_per_gpu: list[int]  # --workers-per-gpu, parsed

    @property
    def resnet18_args(self) -> dict:
        return {"depth": 18, "width": self.args.width, "block": "original"}

    def train(self, config: TrialConfig) -> TrainResult:
        """Train on the training set, measured on the test set every epoch."""
        return train(
            config, self.train_set, self.dataset.test, self.dataset.num_classes, self.on_device,
            eval_is_test=True, compile_model=self.args.compile,
        )  # fmt: skip


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.bench",
        description="Time the plain DataLoader pipeline, our trainer, the fast space's default "
        "config and searches with several workers per GPU, side by side.",
    )
    parser.add_argument("--dataset", default="cifar10", help="a registered dataset (cifar10)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="dataset folder")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS),
        help=f"which to run, comma-separated (default {','.join(SECTIONS)}); speed-ups need plain",
    )  # fmt: skip
    parser.add_argument(
        "--images", type=int, default=0,
        help="train sections 1-3 on a seeded random N of the training images (default 0: all)",
    )  # fmt: skip
    parser.add_argument(
        "--epochs", type=int, default=3,
        help="ResNet-18 epochs per measurement, at least 2: the first (loader start-up, cuDNN "
        "autotuning) is not counted (default 3)",
    )  # fmt: skip
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 width (default 64)")
    parser.add_argument(
        "--loader-workers", type=int, default=8, help="plain pipeline DataLoader workers (8)"
    )
    parser.add_argument(
        "--batch-sizes", default="128,512", help="our trainer's batch sizes (default 128,512)"
    )
    parser.add_argument(
        "--profile", action="store_true",
        help="also profile our trainer at the largest batch size: the share of time the GPU "
        "was busy, and the top GPU operations (CUDA only)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=5, help="fast config runs (default 5)")
    parser.add_argument(
        "--fast-epochs", type=int, default=10,
        help="the fast config's epochs (default 10: airbench94 trains 9.9)",
    )  # fmt: skip
    parser.add_argument(
        "--fast-width", type=int, help="override the fast config's first-group width (tiny runs)"
    )
    parser.add_argument(
        "--search-space", default="convnet", help="space of the timed searches (convnet)"
    )
    parser.add_argument("--search-trials", type=int, default=24, help="trials per search (24)")
    parser.add_argument("--search-epochs", type=int, default=4, help="--epochs of each search (4)")
    parser.add_argument(
        "--workers-per-gpu", default="1,2,4", help="one search per value (default 1,2,4)"
    )
    cli.add_compile_argument(parser, " (sections 2 and 3)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    return parser


def parse_counts(text: str, flag: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} takes positive integers like 1,2,4, not '{text}'") from None
    if not counts or min(counts) < 1:
        raise UsageError(f"{flag} takes positive integers like 1,2,4, not '{text}'")
    return counts


def parse_sections(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",")]
    unknown = [part for part in chosen if part not in SECTIONS]
    if unknown:
        raise UsageError(f"--sections: unknown {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    return chosen


def images_per_second(images: int, seconds: float) -> str:
    return f"{images / seconds:,.0f} img/s"


def plain_row(bench: Bench) -> Row:
    epochs = baseline.train_epochs(
        bench.train_set, bench.resnet18_args, bench.dataset.num_classes, bench.on_device,
        bench.args.loader_workers, bench.args.epochs,
    )  # fmt: skip
    seconds = statistics.mean(epoch.seconds for epoch in epochs[1:])
    images = len(bench.train_set) // baseline.BATCH_SIZE * baseline.BATCH_SIZE
    return Row(
        "ResNet-18, plain DataLoader",
        f"PIL transforms, {bench.args.loader_workers} workers, fp32, batch {baseline.BATCH_SIZE}",
        f"{seconds:.2f} s/epoch ({images_per_second(images, seconds)})",
        1.0,
        {"seconds_per_epoch": seconds, "train_loss": epochs[-1].train_loss},
    )


def resnet18_config(bench: Bench, batch_size: int) -> TrialConfig:
    return TrialConfig(
        model="resnet", model_args=bench.resnet18_args, optimizer="sgd",
        optimizer_args={"momentum": 0.9, "nesterov": True}, lr=0.05, weight_decay=5e-4,
        schedule="cosine", batch_size=batch_size, epochs=bench.args.epochs,
        augment={"flip": {}, "crop": {"padding": bench.train_set.images.shape[-1] // 8}},
        dataset=bench.dataset.name,
    )  # fmt: skip


def trainer_rows(bench: Bench, plain_seconds: float | None) -> list[Row]:
    rows = []
    for batch_size in bench.batch_sizes:
        result = bench.train(resnet18_config(bench, batch_size))
        seconds = statistics.mean(epoch.train_seconds for epoch in result.history[1:])
        compiled = f", compiled in {result.compile_seconds:.0f} s" if bench.args.compile else ""
        rows.append(
            Row(
                "ResNet-18, our trainer",
                f"data and augmentation on the {bench.on_device.type}, batch {batch_size}"
                + compiled,
                f"{seconds:.2f} s/epoch ({images_per_second(result.images_per_epoch, seconds)})",
                plain_seconds / seconds if plain_seconds else None,
                {
                    "batch_size": batch_size,
                    "seconds_per_epoch": seconds,
                    "compile_seconds": result.compile_seconds,
                },
            )  # fmt: skip
        )
    return rows


def profile_row(bench: Bench) -> tuple[Row, str]:
    batch_size = max(bench.batch_sizes)
    config = resnet18_config(bench, batch_size).replace(epochs=2)
    fraction, table = utilization.profiled_gpu_busy(lambda: bench.train(config))
    row = Row(
        "ResNet-18, our trainer, profiled",
        f"batch {batch_size}, 2 epochs under torch.profiler",
        f"GPU busy {fraction:.0%} from its first operation to its last",
        None,
        {"batch_size": batch_size, "gpu_busy": fraction},
    )
    return row, table


def fast_config(bench: Bench) -> TrialConfig:
    """The fast space's default: its airbench94 warm start, for --fast-epochs epochs."""
    context = spaces.SpaceContext(bench.dataset.name, bench.args.fast_epochs, seed=0)
    params = spaces.warm_starts("fast")[0].for_budget(context)
    config = spaces.get("fast")(optuna.trial.FixedTrial(params), context)
    if bench.args.fast_width:
        config = config.replace(model_args={**config.model_args, "width": bench.args.fast_width})
    return config


def fast_row(bench: Bench, plain_seconds: float | None) -> Row:
    """Trained on the whole training set and measured on the test set, as airbench is."""
    config = fast_config(bench)
    if bench.on_device.type == "cuda":
        # Untimed, with a seed not timed below: pays for CUDA's lazy start and cuDNN's tuning.
        bench.train(config.replace(seed=bench.args.seeds, epochs=1))
    results = [bench.train(config.replace(seed=seed)) for seed in range(bench.args.seeds)]
    seconds = [sum(epoch.train_seconds for epoch in result.history) for result in results]
    accuracies = [result.final.eval_accuracy for result in results]
    spread = f" ({min(accuracies):.2%} to {max(accuracies):.2%})" if len(results) > 1 else ""
    return Row(
        "fast space, default config",
        f"fastnet width {config.model_args['width']}, {config.epochs} epochs, batch "
        f"{config.batch_size}, TTA {config.tta}, mean of {len(results)} seed(s)",
        f"{statistics.mean(seconds):.2f} s training, test accuracy "
        f"{statistics.mean(accuracies):.2%}{spread}",
        plain_seconds / statistics.mean(seconds) if plain_seconds else None,
        {"training_seconds": seconds, "test_accuracy": accuracies, "epochs": config.epochs},
    )


def timed_search(bench: Bench, workers: int, folder: Path) -> dict:
    """One search.run in its own processes, as a user starts it; its wall time and outcome."""
    storage = f"sqlite:///{folder / f'search-{workers}.db'}"
    command = [
        sys.executable, "-m", "search.run", "--space", bench.args.search_space,
        "--dataset", bench.dataset.name, "--data-dir", str(bench.args.data_dir),
        "--trials", str(bench.args.search_trials), "--epochs", str(bench.args.search_epochs),
        "--workers-per-gpu", str(workers), "--device", bench.args.device,
        "--storage", storage, "--study", "bench", "--quiet",
    ]  # fmt: skip
    if bench.args.compile:
        command.append("--compile")
    with utilization.UtilizationSampler() as sampler:
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if finished.returncode != 0:
        last = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(f"the search with --workers-per-gpu {workers} failed: {last}")
    found = optuna.load_study(study_name="bench", storage=storage)
    trials = found.get_trials(deepcopy=False, states=progress.FINISHED)
    best = progress.best_trial(found)
    return {
        "workers_per_gpu": workers,
        "seconds": seconds,
        "trials": len(trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials) / len(trials),
        "epochs": sum(len(t.intermediate_values) for t in trials),
        "best_val_accuracy": best.value if best else None,
        "gpu_busy": sampler.mean,
    }


def search_rows(bench: Bench, plain_seconds: float | None) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workers in bench.workers_per_gpu:
            run = timed_search(bench, workers, Path(folder))
            per_hour = run["trials"] / run["seconds"] * 3600
            busy = "n/a" if run["gpu_busy"] is None else f"{run['gpu_busy']:.0%}"
            best = run["best_val_accuracy"]
            rows.append(
                Row(
                    f"{bench.args.search_space} search",
                    f"--workers-per-gpu {workers}, {run['trials']} trials, "
                    f"--epochs {bench.args.search_epochs}",
                    f"{per_hour:,.0f} trials/h in {run['seconds']:.0f} s, {run['pruned']:.0%} "
                    f"pruned, best val {'-' if best is None else f'{best:.2%}'}, GPU busy {busy}",
                    run["epochs"] / run["seconds"] * plain_seconds if plain_seconds else None,
                    {**run, "trials_per_hour": per_hour},
                )
            )
    return rows


FOOTNOTE = (
    "Speed-up over the plain pipeline: its seconds per epoch divided by a ResNet-18 row's; "
    "by the fast config's whole training; for a search, the epochs it trained per second "
    "(all trials, all workers) times the plain pipeline's seconds per epoch."
)


def format_table(rows: list[Row]) -> str:
    lines = ["| what | setting | result | speed-up |", "| --- | --- | --- | --- |"]
    for row in rows:
        speedup = "" if row.speedup is None else f"{row.speedup:.1f}x"
        lines.append(f"| {row.what} | {row.setting} | {row.result} | {speedup} |")
    return "\n".join(lines)


def describe_machine(on_device: torch.device) -> str:
    return (
        f"{device.describe(on_device)}, {os.cpu_count()} CPU cores, {platform.system()}; "
        f"torchvision {torchvision.__version__}, {environment.describe_software()}"
    )


def run_sections(bench: Bench, sections: list[str]) -> tuple[list[Row], str | None]:
    rows = [plain_row(bench)] if "plain" in sections else []
    plain_seconds = rows[0].figures["seconds_per_epoch"] if rows else None
    table = None
    if "trainer" in sections:
        rows += trainer_rows(bench, plain_seconds)
        if bench.args.profile:
            profiled, table = profile_row(bench)
            rows.append(profiled)
    if "fast" in sections:
        rows.append(fast_row(bench, plain_seconds))
    if "search" in sections:
        rows += search_rows(bench, plain_seconds)
    return rows, table


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    sections = parse_sections(args.sections)
    if args.epochs < 2:
        raise UsageError("--epochs must be at least 2: the first epoch is not timed")
    cli.check_positive(args, "width", "seeds", "fast_epochs", "search_trials", "search_epochs")
    batch_sizes = parse_counts(args.batch_sizes, "--batch-sizes")
    workers_per_gpu = parse_counts(args.workers_per_gpu, "--workers-per-gpu")
    on_device = device.resolve(args.device)
    if args.profile and on_device.type != "cuda":
        raise UsageError("--profile measures how busy the GPU is: it needs CUDA (--device)")
    dataset = data.load(args.dataset, args.data_dir)
    train_set = dataset.train + dataset.val
    if args.images:
        chosen = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))
        train_set = train_set.subset(chosen[: args.images])
    bench = Bench(args, dataset, train_set, on_device, batch_sizes, workers_per_gpu)
    machine = describe_machine(on_device)
    print(
        f"search.bench on {machine}; {dataset.name}, {len(train_set)} training images, "
        f"ResNet-18 width {args.width}",
        flush=True,
    )
    rows, profile_table = run_sections(bench, sections)
    print(format_table(rows))
    print(FOOTNOTE)
    if profile_table:
        print(profile_table)
    if args.json:
        document = {
            "command": ["python", "-m", "search.bench", *(argv or sys.argv[1:])],
            "machine": machine,
            "rows": [dataclasses.asdict(row) for row in rows],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.bench")
