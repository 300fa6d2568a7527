"""A worker: runs trials of an existing study until it holds its target of finished trials.

`python -m search.worker --study NAME --storage URL` joins a study from another host; the
space, dataset, budget, sampler and pruner come from the study itself (search.run wrote them),
so a worker cannot run a different search by mistake. search.run uses the same code for its
own workers.
"""

import signal
from collections.abc import Sequence
from pathlib import Path

import torch
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

import spaces
from search import cli, data, device, launch, progress, storage, study
from search.data import Dataset
from search.errors import UsageError
from search.objective import TrialFailed, free_memory, make_objective

MAX_CONSECUTIVE_FAILURES = 5


class FailureGuard:
    """Study callback: stop when trials keep failing (every config runs out of memory, say),
    instead of failing forever without finishing one."""

    def __init__(self, limit: int):
        self.limit = limit
        self.consecutive = 0

    def __call__(self, running, trial: FrozenTrial) -> None:
        self.consecutive = self.consecutive + 1 if trial.state == TrialState.FAIL else 0
        if self.tripped:
            running.stop()

    @property
    def tripped(self) -> bool:
        return self.consecutive >= self.limit


def interrupt_on_sigterm() -> None:
    """Optuna fails the running trial cleanly on KeyboardInterrupt but leaves it RUNNING on
    SIGTERM (then only heartbeats catch it): treat SIGTERM like Ctrl-C."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def work(
    storage_url: str,
    name: str,
    data_dir: Path,
    on_device: torch.device,
    slot: int = 0,
    dataset: Dataset | None = None,
) -> None:
    """Run trials of study `name` on one device until the study has its target."""
    interrupt_on_sigterm()
    running = study.open_for_worker(storage.open_storage(storage_url), name, slot)
    settings = study.settings(running)
    target = int(settings["trials"])
    if dataset is None:
        dataset = data.load(str(settings["dataset"]), data_dir)
    context = spaces.SpaceContext(
        str(settings["dataset"]), int(settings["epochs"]), int(settings["seed"])
    )
    guard = FailureGuard(MAX_CONSECUTIVE_FAILURES)
    if len(running.get_trials(deepcopy=False, states=progress.FINISHED)) < target:
        running.optimize(
            make_objective(spaces.get(str(settings["space"])), context, dataset, on_device),
            catch=(TrialFailed,),
            callbacks=[
                MaxTrialsCallback(target, states=progress.FINISHED),
                progress.TrialPrinter(target),
                guard,
                free_memory,
            ],
            gc_after_trial=True,
        )
    if guard.tripped:
        raise UsageError(
            f"stopped after {guard.limit} failed trials in a row; see their fail_reason "
            "in the dashboard (a smaller model or batch, or another --device)"
        )


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.worker",
        description="Join an existing study (started by search.run) and run its trials.",
    )
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument(
        "--storage",
        default=storage.DEFAULT_STORAGE,
        help=f"study storage URL (default {storage.DEFAULT_STORAGE})",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="dataset folder (default ./data)"
    )
    launch.add_device_arguments(parser)
    parser.add_argument(
        "--slot", type=int, default=0, help="this worker's index on its host (seeds its sampler)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    slots = launch.plan_slots(args.device, args.gpus, args.workers_per_gpu)
    study.settings(study.load(storage.open_storage(args.storage), args.study))  # fail early
    if len(slots) == 1:
        work(args.storage, args.study, args.data_dir, device.resolve(slots[0].device), args.slot)
        return 0
    return launch.spawn_workers(slots, args.study, args.storage, args.data_dir)


if __name__ == "__main__":
    cli.run_main(main, "search.worker")
