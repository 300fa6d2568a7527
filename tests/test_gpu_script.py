"""GPU.md's one command for a lent GPU: it fits the device tool's 2,000 characters, is valid
bash, names only search.bench sections and flags that exist, and finds every package the
project needs on the device or among the wheels carried there."""

import re
import subprocess
from pathlib import Path

import pytest
import tomllib

from search import bench

REPO = Path(__file__).resolve().parents[1]
GPU_MD = REPO / "GPU.md"
DEVICE_WHEELS = REPO.parent / "shared" / "tools" / "device-wheels.sh"
# What ../shared/tools/device-wheels.sh downloads (its pins; a test checks them where it lies).
FROM_DEVICE_WHEELS = {"optuna", "alembic", "sqlalchemy", "colorlog", "mako", "optuna-dashboard",
                      "bottle", "plotly", "greenlet", "cmaes"}  # fmt: skip
# The device image's packages that the project uses, from the device tool's KINDS.md (read on
# a machine running it, 2026-11-17). It has no optuna (device-wheels.sh carries it) and no
# pydantic (GPU.md's second download).
ON_THE_DEVICE = {"torch", "torchvision", "timm", "safetensors", "numpy", "scipy", "pillow",
                 "tqdm", "pyyaml", "huggingface-hub", "typing-extensions"}  # fmt: skip


def script() -> str:
    text = GPU_MD.read_text()
    return re.search(r"<!-- gpu-script -->\n```bash\n(.*?)```", text, re.S).group(1)


def test_the_gpu_script_fits_one_device_command_and_is_valid_bash(tmp_path):
    body = script()
    assert len(body) <= 2000, len(body)
    (tmp_path / "gpu-script.sh").write_text(body)
    assert subprocess.run(["bash", "-n", tmp_path / "gpu-script.sh"]).returncode == 0


def test_every_bench_call_in_it_parses():
    """Each `s NAME TIMEOUT ARGS` line is a search.bench command line that its parser takes
    (a mistyped flag would cost a lent GPU's only run)."""
    calls = re.findall(r"^s (\S+) (\d+) (.*)$", script(), re.M)
    assert {name for name, _, _ in calls} >= {"ops", "trainer", "fast", "search"}
    parser = bench.get_args_parser()
    for _, _, arguments in calls:
        args = parser.parse_args(["--dataset", "imagefolder", *arguments.split()])
        assert bench.parse_sections(args.sections, args.profile)
    total = sum(int(seconds) for _, seconds, _ in calls)
    assert total + 60 <= 8.5 * 60  # the smoke test's timeout, and the install, besides


def pins(text: str) -> set[str]:
    return {pin.lower().replace("_", "-") for pin in re.findall(r"([A-Za-z0-9_.-]+)==", text)}


def carried_wheels() -> set[str]:
    """The distributions GPU.md's 'Before the call' downloads: device-wheels.sh's and its own
    second command's."""
    block = re.search(r"<!-- wheels -->\n(.*?)\n\n", GPU_MD.read_text(), re.S).group(1)
    assert "device-wheels.sh" in block
    return pins(block) | FROM_DEVICE_WHEELS


def test_device_wheels_sh_downloads_what_this_file_says():
    """FROM_DEVICE_WHEELS is read off ../shared/tools/device-wheels.sh, which lies beside the
    repository on the development machines (not in a clone of it alone)."""
    if not DEVICE_WHEELS.exists():
        pytest.skip(f"{DEVICE_WHEELS} is not beside this clone")
    assert pins(DEVICE_WHEELS.read_text()) == FROM_DEVICE_WHEELS


def test_every_dependency_is_on_the_device_or_carried_there():
    """A package missing there ends the smoke test and every section at their first import
    (pydantic, before the second download was added)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    needed = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in project["dependencies"]}
    missing = needed - ON_THE_DEVICE - carried_wheels()
    assert not missing, f"neither on the device nor carried: {sorted(missing)}"
    # and what those need in turn: pydantic's own dependencies
    assert {"pydantic-core", "annotated-types", "typing-inspection"} <= carried_wheels()
