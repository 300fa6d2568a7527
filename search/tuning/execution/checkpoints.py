"""Per-epoch checkpoints of trials, so that a re-run resumes where its predecessor stopped.
After every epoch a trial writes its training state (trainer.TrainingState.state_dict) to
<checkpoint_dir>/<study>/trial-<N>.pt, atomically: a kill mid-write leaves the previous
epoch's. Every worker must read the folder at the same path (on many hosts, a shared
filesystem). Checkpoints of finished trials are removed, except those of the top K complete
trials (--keep-checkpoints K): each holds its trained network and where it stood."""

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import spaces
from registry import UsageError, files
from registry.options import OptionGroup, flag
from search.training import config, legacy
from search.training.config import TrialConfig
from search.tuning.execution import retries
from search.tuning.records import keys, ledger
from search.tuning.strategies import continuation

log = logging.getLogger("search.worker")

# What the strategy needs kept among a study's finished trials (the study's direction given)
Keeps = Callable[[list[FrozenTrial], StudyDirection], set[int]] | None
CHECKPOINT_NAME = re.compile(r"^\.?trial-(\d+)\.pt")  # a checkpoint, or one a kill cut short


def folder_name(study_name: str) -> str:
    """A study name as one safe path component."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", study_name)


DEFAULT_CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class CheckpointOptions(OptionGroup):
    """Where trials checkpoint every epoch, and which finished trials' checkpoints stay."""

    title: ClassVar[str] = "checkpoints"

    checkpoint_dir: str = flag(
        DEFAULT_CHECKPOINT_DIR,
        help="where trials checkpoint every epoch, so that a re-run of a killed or preempted "
        "one resumes there (a folder at the same path on every host: a shared filesystem); "
        f"'' for none (default ./{DEFAULT_CHECKPOINT_DIR})",
    )
    keep_checkpoints: int = flag(
        0, type=int, metavar="K",
        help="keep the checkpoints of the K best complete trials; the rest are removed when "
        "their trials finish (default 0)",
    )  # fmt: skip

    def settings(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The folder resolved here, so that workers on every host read the same path."""
        folder = str(Path(self.checkpoint_dir).resolve()) if self.checkpoint_dir else ""
        return {"checkpoint_dir": folder, "keep_checkpoints": self.keep_checkpoints}


class TrialCheckpoints:
    def __init__(
        self, root: Path, study_name: str, key: str = "", keep: int = 0, keeps: Keeps = None
    ):
        """The study's own folder under `root`: its name made a path, then its checkpoint key
        (settings.checkpoint_key; none for a study made before keys). Besides those of running
        trials and what they go on from, the checkpoints of the `keep` best complete trials
        stay, and those the strategy `keeps` (Scheduler.keeps)."""
        self.folder = Path(root) / (folder_name(study_name) + (f"-{key}" if key else ""))
        self.keep, self.keeps = keep, keeps

    def path(self, number: int) -> Path:
        return self.folder / f"trial-{number}.pt"

    def save(self, number: int, state: dict[str, Any]) -> None:
        import torch  # here: search.status reads checkpoint sizes without loading it

        self.folder.mkdir(parents=True, exist_ok=True)
        files.write_through(self.path(number), lambda out: torch.save(state, out))

    def latest(self, trial: optuna.Trial, trial_config: TrialConfig) -> dict[str, Any] | None:
        """The newest state that the trials this one carries on (those it re-runs or continues)
        left, if any fits its config."""
        import torch

        for number in reversed(spaces.lineage(trial)):
            path = self.path(number)
            if not path.exists():
                continue  # that run died before it finished an epoch
            try:
                # On the CPU: generator states must be there; load_state_dict moves the rest.
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # noqa: BLE001  a damaged checkpoint costs its epochs only
                log.warning("trial %d: cannot read %s (%s); trying an older one",
                            trial.number, path, error)  # fmt: skip
                continue
            if not fits(state, trial_config, str(path)):
                log.warning("trial %d: %s is of another config; not resuming from it",
                            trial.number, path)  # fmt: skip
                continue
            return {**state, "history": legacy.upgraded_history(state["history"])}
        return None

    def remove(self, number: int) -> None:
        for path in self.folder.glob(f"*trial-{number}.pt*"):
            if _number_of(path) == number:
                path.unlink(missing_ok=True)

    def remove_finished(self, running: optuna.Study, finished_trial: FrozenTrial) -> None:
        """A study callback, after each of this worker's trials: remove the checkpoints that
        nothing will resume from (kept: the top `keep` complete trials')."""
        if not self.folder.is_dir():
            return
        needed = self._needed(running, running.get_trials(deepcopy=False))
        for path in list(self.folder.iterdir()):
            number = _number_of(path)
            if number is not None and number not in needed:
                path.unlink(missing_ok=True)

    def _needed(self, running: optuna.Study, trials: list[FrozenTrial]) -> set[int]:
        """Trials whose checkpoints stay: running or waiting ones and those they carry on, the
        failed ones a re-run may still resume (one is queued or running, or may yet be) and
        those they carried on, the top complete, and those the strategy keeps (the most
        promising paused ones, which a continuation may yet resume; a population's newest
        generation, and the one before while the newest is being queued)."""
        resumed = {n for t in trials if t.state.is_finished() and final(t)
                   for n in spaces.lineage(t)}  # fmt: skip
        needed = {t.number for t in trials if t.state == TrialState.RUNNING}
        for trial in trials:
            if trial.state in (TrialState.RUNNING, TrialState.WAITING):
                needed.update(spaces.lineage(trial))  # a population's donor, by several
            elif (
                trial.state == TrialState.FAIL and not final(trial) and trial.number not in resumed
            ):
                # until a re-run of it finishes; and what it carried on, which the re-run resumes
                # from if it was cut off before it saved an epoch of its own (the chaos soak
                # once caught a paused trial's checkpoint removed in that gap)
                needed.update([trial.number, *spaces.lineage(trial)])
        kept = self.keeps(trials, running.directions[0]) if self.keeps else set()
        best = ledger.best_first(trials, running.directions[0])[: self.keep]
        return needed | kept | {t.number for t in best}

    def paused_bytes(self, trials: list[FrozenTrial]) -> int:
        """What the paused trials' checkpoints take on disk."""
        paths = [self.path(t.number) for t in continuation.paused(trials)]
        return sum(path.stat().st_size for path in paths if path.exists())


def fits(state: dict[str, Any], trial_config: TrialConfig, source: str) -> bool:
    """Whether a saved state is of this config, up to the epoch it was saved after (as this
    version reads what it saved): a population-based trial goes on from its parent's, whose
    config lacks the change it makes from there."""
    try:
        saved = config.from_dict(state["config"], source=source)
        return config.as_of(saved, state["epoch"]) == config.as_of(trial_config, state["epoch"])
    except (KeyError, UsageError):
        return False


def final(trial: FrozenTrial) -> bool:
    """A finished trial that nothing will re-run: complete, pruned, not needed (the study had
    its target), or failed after its last allowed re-run."""
    history = trial.user_attrs.get(keys.RETRY_HISTORY, [])
    return (
        trial.state != TrialState.FAIL
        or bool(trial.user_attrs.get(keys.NOT_NEEDED))
        or len(history) >= retries.MAX_RETRIES
    )


def _number_of(path: Path) -> int | None:
    found = CHECKPOINT_NAME.match(path.name)
    return int(found.group(1)) if found else None
