"""GPU.md's one command for a lent GPU: it fits the device tool's 2,000 characters, is valid
bash, and names only search.bench sections and flags that exist."""

import re
import subprocess
from pathlib import Path

from search import bench

GPU_MD = Path(__file__).resolve().parents[1] / "GPU.md"


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
