"""The rooms of README's Layout, kept: the import contracts in pyproject.toml hold (lint-imports),
the training room loads without Optuna, and the commands answer --help (and search.status its
whole job) without loading torch."""

import subprocess
import sys
from pathlib import Path

import pytest

from search import cli, training
from search.training import data
from tests.conftest import REPO, record_settings

COMMANDS = ["run", "worker", "train", "final", "export", "report", "status", "dashboard",
            "predict", "bench", "spaces"]  # fmt: skip
TORCH_FREE_ROOMS = ("records", "store", "strategies")
TORCH_FREE_EXECUTION = ("trial_loop", "claims", "recovery", "endings", "retries", "memory", "live",
                        "stale_watch")  # fmt: skip
TRAINING_MODULES = sorted(
    path.stem for path in (REPO / "search" / "training").glob("*.py") if path.stem[0] != "_"
)


def fresh_interpreter(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")  # import-linter's command
    result = subprocess.run([str(lint_imports), "--no-cache", "--no-logo"], cwd=REPO,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_the_training_room_loads_without_optuna_or_the_search_side():
    imports = "; ".join(f"import search.training.{name}" for name in TRAINING_MODULES)
    result = fresh_interpreter(
        f"import sys; {imports}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('optuna', 'optuna_dashboard', 'sqlalchemy', 'spaces') or m.startswith('search.tuning')))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert {"trainer", "config", "data", "retrain"} <= set(TRAINING_MODULES)


def test_the_search_sides_loop_and_strategies_load_without_torch():
    """The scale benchmark runs hundreds of stand-in workers on the trial loop: what they
    import must not cost torch's 5 s of CPU and 700 MB each (pyproject's contract checks the
    direct imports; this, everything they import)."""
    modules = (
        sorted(
            ".".join(path.relative_to(REPO).with_suffix("").parts)
            for room in TORCH_FREE_ROOMS
            for path in (REPO / "search" / "tuning" / room).glob("*.py")
        )
        + [f"search.tuning.execution.{name}" for name in TORCH_FREE_EXECUTION]
        + ["search.tuning.study"]
    )
    imports = "; ".join(f"import {module}" for module in modules)
    result = fresh_interpreter(f"import sys; {imports}; print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert "search.tuning.strategies.continuation" in modules


@pytest.mark.parametrize("command", COMMANDS)
def test_help_answers_without_loading_torch(command):
    """--help (and any argument mistake, parsed the same way) needs no torch: about 0.4 s
    here against 2 s with it."""
    result = fresh_interpreter(
        "import runpy, sys\n"
        f"sys.argv = ['search.{command}', '--help']\n"
        "try:\n"
        f"    runpy.run_module('search.{command}', run_name='__main__')\n"
        "except SystemExit as exited:\n"
        "    assert exited.code == 0, exited.code\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("TORCH False")


def test_status_reads_a_study_without_loading_torch(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    record_settings(study)
    study.tell(study.ask(), 0.5)
    result = fresh_interpreter(
        "import runpy, sys\n"
        f"sys.argv = ['search.status', '--study', 's', '--storage', '{url}']\n"
        "try:\n"
        "    runpy.run_module('search.status', run_name='__main__')\n"
        "except SystemExit as exited:\n"
        "    assert exited.code == 0, exited.code\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "best val_accuracy 0.5000 (trial 0)" in result.stdout
    assert result.stdout.strip().endswith("TORCH False")


def test_the_dataset_names_in_help_are_the_registered_datasets():
    assert sorted(cli.DATASET_NAMES) == data.DATASETS.names()


def test_the_compile_modes_in_help_are_torch_compiles_modes():
    """Each one torch.compile takes (newer torches add others, 'lite' in 2.14)."""
    import torch._inductor

    assert set(training.COMPILE_MODES) <= set(torch._inductor.list_mode_options())
