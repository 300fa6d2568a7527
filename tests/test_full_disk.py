"""A full disk, for real: a small tmpfs (we are root on these machines; skipped where mount is
not allowed) filled to its last byte, then every command that writes there. Each ends with one
line that says the disk is full and where, a non-zero exit code, no half-written file where the
output would be, and the study it read unchanged."""

import contextlib
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import run_in_this_process, run_tiny_study

GOOD = {"model": "mlp", "model_args": {"width": 16, "depth": 1}, "epochs": 1, "dataset": "sample",
        "schedule": "constant", "lr": 0.05}  # fmt: skip
FULL = ("No space left on device", "disk is full", "MiB free")


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str):
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> None:
    """Take every free byte of `disk` (a tmpfs: no reserved blocks, no delayed allocation)."""
    with open(disk / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 4096)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A real study and a good config beside a full disk (`disk`)."""
    root = tmp_path_factory.mktemp("full-disk")
    storage = run_tiny_study(root, "studies", epochs=1, trials=2)  # the default storage's name
    (root / "good.yaml").write_text(yaml.safe_dump(GOOD))
    with mounted_tmpfs(root / "disk", "2m") as disk:
        (disk / "studies.db").write_bytes((root / "studies.db").read_bytes())  # a study there
        fill(disk)
        yield root, storage, disk


def trials(storage: str) -> list[tuple]:
    """What a command must leave as it was: every trial's number, state, values, params."""
    study = optuna.load_study(study_name="studies", storage=storage)
    return [(t.number, t.state, t.values, t.params) for t in study.trials]


def trials_of_copy(path: Path, elsewhere: Path) -> list[tuple]:
    """trials() of the study file at `path`, read from a copy: SQLite cannot open a file in
    WAL mode on a full disk at all (its -shm file cannot be made)."""
    copy = elsewhere / "copy.db"
    copy.write_bytes(path.read_bytes())
    try:
        return trials(f"sqlite:///{copy}")
    finally:
        copy.unlink()


# fmt: off
RUN = ["search.run", "--space", "test_tiny", "--space-module", "tests.spaces_for_tests",
       "--dataset", "sample", "--epochs", "1"]
CASES = {  # name: the command and its arguments, run beside the full disk
    "a retrain's folder": ["search.train", "--config", "good.yaml", "--output-dir", "disk/run"],
    "an exported config": ["search.export", "--study", "studies", "-o", "disk/best.yaml"],
    "a report": ["search.report", "--study", "studies", "-o", "disk/report.html"],
    "a new study file": RUN + ["--trials", "2", "--storage", "sqlite:///disk/new.db",
                               "--create-only"],
    "a study file that cannot grow": RUN + ["--trials", "4", "--study", "studies", "--storage",
                                            "sqlite:///disk/studies.db"],
    "trials' checkpoints": RUN + ["--trials", "2", "--study", "checkpointed", "--storage",
                                  "sqlite:///elsewhere.db", "--checkpoint-dir",
                                  "disk/checkpoints"],
}
# fmt: on


@pytest.mark.parametrize("case", CASES)
def test_a_full_disk_is_one_line_and_leaves_no_half_written_output(
    case, folder, monkeypatch, capfd
):
    root, storage, disk = folder
    module, *args = CASES[case]
    before = trials(storage)
    on_disk = trials_of_copy(disk / "studies.db", root)
    monkeypatch.chdir(root)
    code = run_in_this_process(module, args, monkeypatch)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and any(words in lines[0] for words in FULL), err
    # nothing half-written (a folder made for it may stay, and SQLite's own -wal and -shm
    # beside the study, which it recovers from when it next opens the file)
    left = sorted(path.name for path in disk.rglob("*")
                  if path.is_file() and not path.name.endswith(("-wal", "-shm")))  # fmt: skip
    assert left == ["filler", "studies.db"], left
    assert trials(storage) == before
    assert trials_of_copy(disk / "studies.db", root) == on_disk
