"""Shared fixtures: the packaged CIFAR-10 sample, loaded once, and helpers to run the CLIs."""

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from search.training import data

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sample() -> data.Dataset:
    return data.load("sample", Path("unused"))


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def run_command(module: str, *args: str, cwd: Path, timeout: float = 600):
    """Run `python -m module args` as a user would; returns the CompletedProcess."""
    # The repo root on the path, so that workers can import tests.spaces_for_tests.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_this_process(module: str, args: list[str], monkeypatch) -> int:
    """The exit code of `python -m module args`, run through the commands' own boundary
    (cli.run_main) in this interpreter: a new one costs ~4 s, most of it torch."""
    import importlib

    from search import cli

    monkeypatch.setattr(sys, "argv", [module, *args])
    with pytest.raises(SystemExit) as exited:
        cli.run_main(importlib.import_module(module).main, module)
    return exited.value.code


@pytest.fixture
def run_here(monkeypatch, capfd):
    """run_command's twin in this interpreter, for a test of what a command does rather than
    of its process: `run_here("search.export", ..., cwd=folder)` runs it in `folder` through
    cli.run_main and returns the same CompletedProcess. It saves the ~5 s of CPU that a new
    interpreter spends importing torch and torch._dynamo (every optimizer imports it), paid
    once per test that way. Commands that spawn workers keep run_command: their workers are
    processes either way."""

    def run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
        with monkeypatch.context() as patch:
            patch.chdir(cwd)
            code = run_in_this_process(module, list(args), patch)
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess([module, *args], code, out, err)

    return run


def run_here_once(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """run_here for a module-scoped fixture, which cannot take capfd: the command's output is
    what it writes to sys.stdout and sys.stderr (ours, Optuna's and tqdm's all go there)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(out), redirect_stderr(err):
        patch.chdir(cwd)
        code = run_in_this_process(module, list(args), patch)
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def run_tiny_study(folder: Path, name: str, epochs: int, trials: int, flags=()) -> str:
    """A real study of tests.spaces_for_tests' test_tiny space, run in this process by
    search.run with `flags` besides, its checkpoints in `folder` (not in the clone, the
    test's working directory); returns its storage URL."""
    from search import run

    storage = f"sqlite:///{folder / (name + '.db')}"
    argv = ["--space", "test_tiny", "--space-module", "tests.spaces_for_tests",
            "--dataset", "sample", "--epochs", str(epochs), "--trials", str(trials),
            "--storage", storage, "--study", name,
            "--checkpoint-dir", str(folder / "checkpoints"), *flags]  # fmt: skip
    assert run.main(argv) == 0
    return storage


def record_settings(study, **values) -> None:
    """Record search.run's settings on a study a test made by hand (mlp on the sample, 2
    epochs, unless `values` say otherwise), as search.run records them."""
    from search.tuning.study import checked

    recorded = checked({"space": "mlp", "dataset": "sample", "epochs": 2, **values})
    for key, value in recorded.to_attrs().items():
        study.set_user_attr(key, value)
