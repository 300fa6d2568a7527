"""The installed `cifar-search` command and `python -m search.*`, run from an ordinary project
folder: one that holds the user's own models.py, spaces.py, registry.py (and search.py)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_command

CIFAR_SEARCH = Path(sys.executable).parent / "cifar-search"  # where pip put the script
USERS_FILES = {
    "models.py": "raise SystemExit('the user models.py was imported')\n",
    "spaces.py": "raise SystemExit('the user spaces.py was imported')\n",
    "registry.py": "raise SystemExit('the user registry.py was imported')\n",
}
CONFIG = {"model": "mlp", "model_args": {"width": 16, "depth": 1}, "epochs": 1,
          "dataset": "sample", "schedule": "constant", "lr": 0.05}  # fmt: skip


def cifar_search(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CIFAR_SEARCH), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A user's folder with their own files of our packages' names, and a checkpoint trained
    there by `cifar-search train`."""
    folder = tmp_path_factory.mktemp("project")
    for name, text in USERS_FILES.items():
        (folder / name).write_text(text)
    (folder / "search.py").write_text("raise SystemExit('the user search.py was imported')\n")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))
    from PIL import Image

    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "red.png")
    trained = cifar_search("train", "--config", "tiny.yaml", "--output-dir", "runs/tiny",
                           cwd=folder)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    return folder


def test_the_installed_command_ignores_the_users_files_of_our_names(project):
    predicted = cifar_search("predict", "--checkpoint", "runs/tiny/checkpoint.pt", "red.png",
                             "--top", "2", cwd=project)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith("red.png: ") and predicted.stdout.count(",") == 1
    listed = cifar_search("spaces", "mlp", cwd=project)
    assert listed.returncode == 0 and listed.stdout.startswith("mlp: "), listed.stderr


def test_python_dash_m_ignores_the_users_models_spaces_and_registry(project, tmp_path):
    for name, text in USERS_FILES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "models").mkdir()  # a package of the same name, beside the module
    (tmp_path / "models" / "__init__.py").write_text(USERS_FILES["models.py"])
    predicted = run_command("search.predict", "--checkpoint",
                            str(project / "runs/tiny/checkpoint.pt"), str(project / "red.png"),
                            cwd=tmp_path)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    assert "was imported" not in predicted.stdout + predicted.stderr


def test_the_installed_command_lists_its_subcommands_and_refuses_others(tmp_path):
    listed = cifar_search("--help", cwd=tmp_path)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines() if line.startswith("  ")] == [
        "run", "worker", "status", "export", "train", "final", "report", "dashboard", "proxy",
        "predict", "spaces", "bench",
    ]  # fmt: skip
    unknown = cifar_search("serch", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("cifar-search: error: unknown command 'serch'")
    usage = cifar_search("status", "--study", cwd=tmp_path)
    assert usage.returncode == 2
    assert usage.stderr.startswith("cifar-search status: error: argument --study")


def test_the_installed_command_imports_the_users_space_module_from_the_folder(project):
    (project / "my_spaces.py").write_text(
        "import spaces\n\n\n@spaces.register_space('mine')\ndef mine(trial, context):\n"
        "    '''My own space.'''\n    return None\n"
    )
    listed = cifar_search("run", "--space-module", "my_spaces", "--list-spaces", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert "mine: My own space." in listed.stdout
