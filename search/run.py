"""`python -m search.run`: create or resume a study and run trials until it has --trials finished.

python -m search.run --space resnet --trials 200
python -m search.run --space resnet --trials 20 --dataset sample --epochs 3
"""

from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

import spaces
from search import cli, data, device, progress, samplers, storage, study
from search.errors import UsageError
from search.objective import TrialFailed, free_memory, make_objective

MAX_CONSECUTIVE_FAILURES = 5


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.run",
        description="Search hyperparameters of an image classifier with Optuna. Re-running the "
        "same command resumes the study.",
    )
    parser.add_argument(
        "--space", required=True, help=f"search space: {', '.join(spaces.list_spaces())}"
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=100,
        help="finished (complete or pruned) trials wanted in the study in total, across all "
        "workers and runs (default 100)",
    )
    parser.add_argument(
        "--storage",
        default=storage.DEFAULT_STORAGE,
        help=f"study storage URL: sqlite:///FILE.db or postgresql://USER@HOST/DB "
        f"(default {storage.DEFAULT_STORAGE})",
    )
    parser.add_argument("--study", help="study name (default: <space>-<dataset>)")
    parser.add_argument(
        "--dataset",
        default="cifar10",
        help=f"{', '.join(data.DATASETS.names())} (default cifar10; 'sample' ships with the "
        "package; 'imagefolder' reads --data-dir/train/<class>/* and test/<class>/*)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="dataset folder (default ./data)"
    )
    parser.add_argument(
        "--epochs", type=int, default=20, help="most epochs one trial may train (default 20)"
    )
    parser.add_argument(
        "--sampler",
        default="tpe",
        help=f"{', '.join(samplers.SAMPLERS.names())} (default tpe)",
    )
    parser.add_argument(
        "--pruner",
        default="hyperband",
        help=f"{', '.join(samplers.PRUNERS.names())} (default hyperband; decides per epoch)",
    )
    parser.add_argument(
        "--timeout", type=float, help="stop starting new trials after this many seconds"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="sampler seed; trial N trains with seed+N (default 0)"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    return parser


class FailureGuard:
    """Study callback: stop the search when trials keep failing (every config runs out of
    memory, say), instead of failing forever without ever finishing one."""

    def __init__(self, limit: int):
        self.limit = limit
        self.consecutive = 0

    def __call__(self, running: optuna.Study, trial: FrozenTrial) -> None:
        self.consecutive = self.consecutive + 1 if trial.state == TrialState.FAIL else 0
        if self.tripped:
            running.stop()

    @property
    def tripped(self) -> bool:
        return self.consecutive >= self.limit


def check_positive(args) -> None:
    for flag in ("trials", "epochs", "timeout"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UsageError(f"--{flag} must be positive, not {value}")


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    check_positive(args)
    space = spaces.get(args.space)
    for registry, name in ((samplers.SAMPLERS, args.sampler), (samplers.PRUNERS, args.pruner)):
        registry[name]  # an unknown name fails here, before anything is loaded
    on_device = device.resolve(args.device)
    storage.parse_url(args.storage)  # a malformed URL fails now, not after loading the data
    dataset = data.load(args.dataset, args.data_dir)  # before the storage: no empty study file
    study_storage = storage.open_storage(args.storage)
    name = args.study or f"{args.space}-{args.dataset}"
    settings = {"space": args.space, "dataset": args.dataset, "epochs": args.epochs}
    running = study.create_or_resume(
        study_storage, name, settings, args.sampler, args.pruner, args.seed, args.epochs
    )
    finished = len(running.get_trials(deepcopy=False, states=progress.FINISHED))
    print(
        f"study {name}: {finished}/{args.trials} trials finished; space {args.space}, "
        f"{args.dataset} ({len(dataset.train)} train / {len(dataset.val)} val images), "
        f"up to {args.epochs} epochs per trial, {args.sampler} sampler, {args.pruner} pruner, "
        f"on {device.describe(on_device)}",
        flush=True,
    )
    guard = FailureGuard(MAX_CONSECUTIVE_FAILURES)
    if finished < args.trials:
        context = spaces.SpaceContext(args.dataset, args.epochs, args.seed)
        running.optimize(
            make_objective(space, context, dataset, on_device),
            timeout=args.timeout,
            catch=(TrialFailed,),
            callbacks=[
                MaxTrialsCallback(args.trials, states=progress.FINISHED),
                progress.TrialPrinter(args.trials),
                guard,
                free_memory,
            ],
            gc_after_trial=True,
        )
    print(progress.summary(running, args.storage, storage.DEFAULT_STORAGE))
    if guard.tripped:
        raise UsageError(
            f"stopped after {guard.limit} failed trials in a row; see their fail_reason "
            "in the dashboard (a smaller model or batch, or another --device)"
        )
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.run")
