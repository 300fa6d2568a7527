"""The worker loop: run trials of an existing study until it holds its target of finished
trials. The space, dataset, budget, sampler and pruner come from the study itself (search.run
wrote them), so a worker cannot run a different search by mistake. search.run's own worker and
`python -m search.worker` on other hosts both run this."""

import datetime
import functools
import logging
import signal
import time
from pathlib import Path

import optuna
import torch
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

import spaces
from registry import RunFailure
from search.training import checkpoint, config, data
from search.training.data import Dataset
from search.tuning import launch, progress, proxy, retries, storage, study
from search.tuning.objective import Objective, TrialFailed, free_memory
from search.tuning.settings import StudySettings
from search.tuning.trial_checkpoints import TrialCheckpoints

log = logging.getLogger("search.worker")

MAX_CONSECUTIVE_FAILURES = 5
MAX_OUTAGES = 24  # storage errors in a row (2 minutes of polling) before a worker gives up
POLL_SECONDS = 5  # how often an idle worker looks whether the study needs it again
IN_FLIGHT_OR_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class FailureGuard:
    """Study callback: stop when trials keep failing (every config runs out of memory, say),
    instead of failing forever without finishing one."""

    def __init__(self, limit: int):
        self.limit = limit
        self.consecutive = 0

    def __call__(self, running, trial: FrozenTrial) -> None:
        if trial.user_attrs.get("not_needed"):
            return  # a surplus trial, failed on purpose: not a failure to train
        self.consecutive = self.consecutive + 1 if trial.state == TrialState.FAIL else 0
        if self.tripped:
            running.stop()

    @property
    def tripped(self) -> bool:
        return self.consecutive >= self.limit


def finished(counts: dict[TrialState, int]) -> int:
    return counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]


def out_of_time(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


class StopWhenEnoughInFlight:
    """Study callback: stop starting trials once finished plus running ones reach the target.
    Optuna's MaxTrialsCallback counts only finished trials, so N parallel workers overshoot
    by up to N-1 (optuna#3518)."""

    def __init__(self, target: int):
        self.target = target

    def __call__(self, running: optuna.Study, trial: FrozenTrial) -> None:
        counts = progress.count_by_state(running)
        if finished(counts) + counts[TrialState.RUNNING] >= self.target:
            running.stop()


def claim_or_give_up(objective, target: int):
    """Workers that start trials at the same moment can still overshoot; trial numbers break
    the tie. A trial with `target` finished or running trials numbered below it is not needed:
    it fails at once, untrained, with that reason, and its worker stops starting trials."""

    def claimed(trial: optuna.Trial) -> float:
        ahead = trial.study.get_trials(deepcopy=False, states=IN_FLIGHT_OR_FINISHED)
        if sum(other.number < trial.number for other in ahead) >= target:
            reason = f"not needed: {target} earlier trials had finished or were running"
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("not_needed", True)
            trial.study.stop()
            raise TrialFailed(reason)
        return objective(trial)

    return claimed


def interrupt_on_sigterm() -> None:
    """Optuna fails the running trial cleanly on KeyboardInterrupt but leaves it RUNNING on
    SIGTERM (then only heartbeats catch it): treat SIGTERM like Ctrl-C. What Slurm and
    Kubernetes send before they kill: the trial's last epoch is checkpointed, and it is
    failed and re-queued at once (work()), not a grace period later."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def read_settings(storage_url: str, name: str) -> StudySettings:
    """The study's recorded settings, read before the storage is opened with its heartbeat."""
    plain = storage.open_storage(storage_url, create=False)
    try:
        return study.settings(study.load(plain, name))
    finally:
        storage.close(plain)


def space_context(settings: StudySettings) -> spaces.SpaceContext:
    """What the study's space may know: its dataset, classes, budget, seed and the network to
    fine-tune (read once from --init-from's checkpoint)."""
    pretrained = None
    if settings.init_from:
        path = settings.init_from
        saved = checkpoint.read(path)
        trained = config.from_dict(saved["config"], source=path)
        input_size = trained.input_shape(saved["image_shape"])[-1]
        pretrained = spaces.Pretrained(
            path, trained.model, trained.model_args, input_size, trained.tta, trained.tta_args
        )
    return spaces.SpaceContext(
        settings.dataset, settings.epochs, settings.seed, tuple(settings.classes), pretrained,
    )  # fmt: skip


def fail_orphans(running: optuna.Study, grace_seconds: float) -> None:
    """Fail RUNNING trials that no worker ever started: a worker that loses the storage
    inside study.ask() can leave its new trial RUNNING with no heartbeat, which heartbeats
    never catch. A started trial names its worker within moments (search/objective.py)."""
    now = datetime.datetime.now()  # Optuna stores naive local times
    for trial in running.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start
        if "worker" in trial.user_attrs or (now - started).total_seconds() < grace_seconds:
            continue
        reason = "orphaned: its worker lost the storage before the trial could start"
        running._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        running.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def run_some_trials(
    running, objective, target, callbacks, poll_seconds, deadline, grace_seconds
) -> bool:
    """Run trials until the study needs none from this worker for now; False once the study
    has its target finished trials."""
    counts = progress.count_by_state(running)
    if finished(counts) >= target:
        return False
    if finished(counts) + counts[TrialState.RUNNING] >= target:
        # Enough trials are running elsewhere; wait in case one dies or fails and the study
        # needs another. A dead one is failed here and re-queued (WAITING).
        time.sleep(poll_seconds)
        fail_stale_trials(running)
        fail_orphans(running, grace_seconds)
        return True
    running.optimize(
        claim_or_give_up(objective, target),
        timeout=None if deadline is None else max(0.0, deadline - time.monotonic()),
        catch=(TrialFailed,),
        callbacks=[StopWhenEnoughInFlight(target), *callbacks, free_memory],
        gc_after_trial=True,
    )
    return True


def work(
    storage_url: str,
    name: str,
    data_dir: Path,
    on_device: torch.device,
    slot: int = 0,
    dataset: Dataset | None = None,
    timeout: float | None = None,
    output: str = "lines",
) -> None:
    """Run trials of study `name` on one device until the study has its target."""
    interrupt_on_sigterm()
    settings = read_settings(storage_url, name)
    log.debug("study %s: %s", name, settings)
    spaces.import_user_module(settings.space_module)
    study_storage = storage.open_storage(
        storage_url, settings.heartbeat_interval, settings.grace_period, create=False
    )
    running = study.open_for_worker(study_storage, name, settings, slot)
    target = settings.trials
    if dataset is None:
        dataset = data.load(settings.dataset, data_dir, classes=settings.classes)
    checkpoints = None
    if settings.checkpoint_dir:
        checkpoints = TrialCheckpoints(
            Path(settings.checkpoint_dir), name, settings.keep_checkpoints
        )
    guard = FailureGuard(MAX_CONSECUTIVE_FAILURES)
    heartbeat = None
    if proxy.is_proxy_url(storage_url):  # behind the proxy, trials beat for its watch
        heartbeat = functools.partial(
            proxy.beating, study_storage, interval=settings.heartbeat_interval
        )
    objective = Objective(
        spaces.get(settings.space), space_context(settings), dataset, on_device,
        study.parse_objectives(settings.objectives), settings.compile, checkpoints, heartbeat,
    )  # fmt: skip
    deadline = None if timeout is None else time.monotonic() + timeout
    finished_before = len(running.get_trials(deepcopy=False, states=progress.FINISHED))
    printer = progress.TrialPrinter(target, finished_before, output)
    callbacks = [printer, guard, *([checkpoints.remove_finished] if checkpoints else [])]
    poll_seconds = min(POLL_SECONDS, settings.heartbeat_interval)
    outages = 0
    while not guard.tripped and not out_of_time(deadline):
        try:
            requeue(running, objective, "lost the storage")  # a trial the outage cut off
            if not run_some_trials(
                running, objective, target, callbacks, poll_seconds, deadline,
                settings.grace_period,
            ):  # fmt: skip
                break
            outages = 0
        except KeyboardInterrupt:
            try:
                requeue(running, objective, "was interrupted")
            except Exception as error:  # noqa: BLE001  stopping anyway; say what is left
                log.warning("could not re-queue trial %s: %s", objective.in_hand, error)
            raise
        except Exception as error:
            # The database went away (a restart, a network blip). Pooled connections are
            # pre-pinged, so waiting and going on reconnects; the trial it cut off is re-run.
            lost = storage.outage(error)
            if lost is None:
                raise
            outages += 1
            if outages > MAX_OUTAGES:
                raise RunFailure(f"lost the storage for good: {storage.first_line(lost)}") from None
            log.warning(
                "lost the storage (%s); retrying in %d s", storage.first_line(lost), POLL_SECONDS
            )
            time.sleep(POLL_SECONDS)
    printer.close()
    if guard.tripped:
        raise RunFailure(
            f"stopped after {guard.limit} failed trials in a row; see their fail_reason "
            "in the dashboard (a smaller model or batch, or another --device)"
        )


def requeue(running: optuna.Study, objective: Objective, reason: str) -> None:
    """Re-run the trial in hand, if any, from its last checkpoint (retries.retry_cut_off)."""
    if objective.in_hand is None:
        return
    if retries.retry_cut_off(running, objective.in_hand):
        log.info("trial %d %s; re-queued to resume", objective.in_hand, reason)
    objective.in_hand = None


def watch_progress(storage_url: str, name: str, output: str) -> progress.StudyWatcher:
    """What a parent shows while its workers (quiet themselves) run the study."""
    found = study.load(storage.open_storage(storage_url, create=False), name)
    target = study.settings(found).trials
    finished_before = len(found.get_trials(deepcopy=False, states=progress.FINISHED))
    return progress.StudyWatcher(found, progress.TrialPrinter(target, finished_before, output))


def run_workers(
    slots: list[launch.Slot],
    storage_url: str,
    name: str,
    data_dir: Path,
    timeout: float | None,
    quiet: bool,
    slot_number: int = 0,
    dataset: Dataset | None = None,
) -> int:
    """One slot: work in this process (on `dataset` if it is already loaded). Several: one
    quiet worker process per slot, this one showing their progress. The exit code."""
    output = progress.output_mode(quiet)
    if len(slots) == 1:
        on_device = launch.slot_device(slots[0])
        work(storage_url, name, data_dir, on_device, slot_number, dataset, timeout, output)
        return 0
    interrupt_on_sigterm()  # a scheduler's SIGTERM to the parent reaches its workers too
    watcher = watch_progress(storage_url, name, output)
    return launch.spawn_workers(
        slots, name, storage_url, data_dir, timeout, watcher, first_slot=slot_number
    )
