"""Retrains recorded on the study: Optuna refuses artifacts on finished trials, so a retrain's
files go on the study, named after the trial they retrain (trial-12-checkpoint.pt), where
optuna-dashboard lists them on the study page."""

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from registry import UsageError
from search.tuning import study
from search.tuning.store import faults, storage

log = logging.getLogger("search.train")


@contextlib.contextmanager
def source_trial(provenance: dict, storage_url: str) -> Iterator[tuple[optuna.Study, int]]:
    """(study, trial number) a config was exported from, for --attach, with its storage open
    for as long as the block runs. search.train enters it twice: to check before training, and
    to attach after, so that no connection is held (nor SQLite's log left open) for the hours
    between."""
    if "study" not in provenance or "trial" not in provenance:
        raise UsageError("--attach needs a config written by search.export (it names its trial)")
    with storage.kept_open(storage_url, create=False) as opened:
        found = study.load(opened, provenance["study"])
        if provenance["trial"] not in {t.number for t in found.get_trials(deepcopy=False)}:
            raise UsageError(f"study {provenance['study']} has no trial {provenance['trial']}")
        yield found, provenance["trial"]


def attach(paths: list[Path], found: optuna.Study, number: int, artifact_dir: Path) -> None:
    """Upload `paths` to the study's artifact store in artifact_dir, named after trial `number`;
    a failure is one UsageError line."""
    try:
        artifact_dir.mkdir(parents=True, exist_ok=True)
        store = FileSystemArtifactStore(str(artifact_dir))
        with tempfile.TemporaryDirectory() as staging:
            for path in paths:
                named = Path(staging) / f"trial-{number}-{path.name}"
                shutil.copyfile(path, named)
                upload_artifact(artifact_store=store, file_path=str(named), study_or_trial=found)
    except OSError as error:
        raise UsageError(f"cannot store artifacts in {artifact_dir}: {error.strerror}") from None
    except Exception as error:
        fault = faults.describe_fault(error)
        if fault is None:
            raise
        raise fault from None
    names = ", ".join(path.name for path in paths)
    log.info("attached %s of trial %d to study %s (%s)", names, number, found.study_name,
             artifact_dir)  # fmt: skip
