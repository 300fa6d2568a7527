"""The cluster launchers in deploy/: the Kubernetes manifests against Kubernetes' own schemas
(kubernetes-validate, strict), the Slurm script through bash's parser. The Slurm script's
real run on a single-node Slurm is recorded in README ("Many GPUs, many hosts")."""

import subprocess
import sys

from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def test_the_kubernetes_manifests_are_valid_resources():
    manifests = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    assert {m.name for m in manifests} >= {"storage.yaml", "create-study.yaml", "workers.yaml"}
    checked = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *map(str, manifests)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "job/workers" in checked.stdout and "statefulset/study-db" in checked.stdout


def test_the_slurm_script_parses_and_runs_search_worker_with_the_python_it_is_given(tmp_path):
    """It names its interpreter ($PYTHON, refused in one line when it is not there) and asks
    for no CPU count a small node lacks (the job would pend for ever, with no error)."""
    script = DEPLOY / "slurm" / "search-worker.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "#SBATCH --array=" in text and '"$PYTHON" -m search.worker' in text
    assert "#SBATCH --cpus-per-task" not in text
    environment = {"PATH": "/usr/bin:/bin", "STUDY": "s", "STORAGE": "sqlite:///s.db",
                   "PYTHON": str(tmp_path / "no-such-python")}  # fmt: skip
    ran = subprocess.run(["bash", str(script)], env=environment, capture_output=True, text=True)
    assert ran.returncode == 2
    assert ran.stderr.strip() == f"PYTHON={tmp_path / 'no-such-python'} is not an executable python"
