"""A worker: set up the trainer's objective on one device for an existing study and run its
trials (trial_loop.py) until the study holds its target. The space, dataset, budget, sampler
and pruner come from the study itself (search.run wrote them), so a worker cannot run a
different search by mistake. search.run's own worker and `python -m search.worker` on other
hosts both run this."""

from pathlib import Path

import optuna
import torch

import spaces
from registry.signals import interrupt_on_sigterm
from search.training import checkpoint, data
from search.training.data import Dataset
from search.tuning import study
from search.tuning.execution import launch, live, trial_loop
from search.tuning.execution.checkpoints import TrialCheckpoints
from search.tuning.execution.objective import Objective, free_memory
from search.tuning.records import ledger
from search.tuning.records.settings import StudySettings
from search.tuning.store import storage
from search.tuning.strategies import strategy


def space_context(settings: StudySettings) -> spaces.SpaceContext:
    """What the study's space may know: its dataset, classes, budget, seed and the network to
    fine-tune (read once from --init-from's checkpoint)."""
    pretrained = None
    if settings.init_from:
        saved = checkpoint.read(settings.init_from)
        trained = saved.config
        pretrained = spaces.Pretrained(
            settings.init_from, trained.model, trained.model_args, saved.input_shape[-1],
            trained.tta, trained.tta_args,
        )  # fmt: skip
    return spaces.SpaceContext(
        settings.dataset, settings.epochs, settings.seed, tuple(settings.classes), pretrained,
    )  # fmt: skip


def work(
    storage_url: str,
    name: str,
    settings: StudySettings,
    data_dir: Path,
    on_device: torch.device,
    slot: int = 0,
    dataset: Dataset | None = None,
    timeout: float | None = None,
    output: str = "lines",
) -> None:
    """Run trials of study `name` (its recorded `settings`, read once by the caller) on one
    device until the study has its target."""
    with trial_loop.join(storage_url, name, settings, slot) as joined:
        spaces.import_user_module(settings.space_module)
        if dataset is None:
            dataset = data.load(settings.dataset, data_dir, classes=settings.classes)
        # what the strategy may resume: a trial whose checkpoint is there
        scheduler = strategy.of(settings, lambda number: checkpoints.path(number).exists())
        checkpoints = None
        if settings.checkpoint_dir:
            checkpoints = TrialCheckpoints(
                Path(settings.checkpoint_dir), name, settings.checkpoint_key,
                settings.keep_checkpoints, scheduler.keeps,
            )  # fmt: skip
        objective = Objective(
            settings.space, space_context(settings), dataset, on_device, settings.objectives,
            settings.compile, checkpoints, scheduler, settings.search_box,
        )  # fmt: skip
        callbacks = [*([checkpoints.remove_finished] if checkpoints else []), free_memory]
        # Every torch optimizer imports torch._dynamo when first built (its methods are wrapped
        # in torch._disable_dynamo): imported now, its objects are among those the trial loop
        # freezes out of the collection after each trial, not walked by every one of them.
        import torch._dynamo  # noqa: F401

        trial_loop.run_trials(
            joined.study, objective, settings, timeout, output, callbacks, scheduler
        )


def watch_progress(found: optuna.Study, target: int, output: str) -> live.StudyWatcher:
    """What a parent shows while its workers (quiet themselves) run the study."""
    finished_before = len(found.get_trials(deepcopy=False, states=ledger.FINISHED))
    return live.StudyWatcher(found, live.TrialPrinter(target, finished_before, output))


def run_workers(
    slots: list[launch.Slot],
    storage_url: str,
    name: str,
    settings: StudySettings,
    data_dir: Path,
    timeout: float | None,
    quiet: bool,
    slot_number: int = 0,
    dataset: Dataset | None = None,
) -> int:
    """One slot: work in this process (on `dataset` if it is already loaded). Several: one
    quiet worker process per slot, this one showing their progress. The exit code."""
    output = live.output_mode(quiet)
    if len(slots) == 1:
        on_device = launch.slot_device(slots[0])
        work(storage_url, name, settings, data_dir, on_device, slot_number, dataset, timeout,
             output)  # fmt: skip
        return 0
    interrupt_on_sigterm()  # a scheduler's SIGTERM to the parent reaches its workers too
    with storage.kept_open(storage_url, create=False) as watched:
        watcher = watch_progress(study.load(watched, name), settings.trials, output)
        return launch.spawn_workers(
            slots, name, storage_url, data_dir, timeout, watcher, first_slot=slot_number
        )
