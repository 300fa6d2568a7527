"""The study as optuna-dashboard shows it: served over HTTP, with its note and artifacts."""

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import optuna_dashboard
import pytest
from optuna.artifacts import get_all_artifact_meta

from tests.conftest import run_tiny_study


@pytest.fixture(scope="module")
def served_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboard")
    return folder, run_tiny_study(folder, "d", epochs=2, trials=3)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answer_ctrl_c() -> None:
    """A shell's background job (a CI script's, say) ignores SIGINT, and children inherit
    that; the server is to stop on Ctrl-C as it does in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_the_study_note_says_how_it_was_run(served_study):
    _, storage = served_study
    note = optuna_dashboard.get_note(optuna.load_study(study_name="d", storage=storage))
    assert "python -m search.run --space test_tiny" in note
    assert "4500 train / 500 validation" in note and "1000 test images" in note
    assert f"torch {__import__('torch').__version__}" in note


def test_retraining_attaches_checkpoint_and_metrics_to_the_study_by_trial(served_study, run_here):
    folder, storage = served_study
    exported = run_here("search.export", "--study", "d", "--storage", storage, "-o", "b.yaml",
                        cwd=folder)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    trained = run_here("search.train", "--config", "b.yaml", "--attach", "--storage", storage,
                       "--epochs", "1", cwd=folder)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    study = optuna.load_study(study_name="d", storage=storage)
    artifacts = get_all_artifact_meta(study)
    number = study.best_trial.number
    assert sorted(a.filename for a in artifacts) == [
        f"trial-{number}-{name}"
        for name in ("checkpoint.pt", "history.csv", "metrics.json", "report.html")
    ]
    assert (folder / "artifacts" / artifacts[0].artifact_id).exists()


def test_the_dashboard_serves_the_study_and_stops_cleanly(served_study):
    folder, storage = served_study
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "search.dashboard", "--storage", storage, "--port", str(port)],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=answer_ctrl_c,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get_json(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read()
                time.sleep(0.3)
        assert [s["study_name"] for s in studies] == ["d"]
        detail = get_json(f"{base}/api/studies/{studies[0]['study_id']}?after=0")
        assert len(detail["trials"]) == len(
            optuna.load_study(study_name="d", storage=storage).trials
        )
        assert all(t["intermediate_values"] for t in detail["trials"])  # learning curves
        assert {"config", "param_count", "worker"} <= {
            attr["key"] for attr in detail["trials"][0]["user_attrs"]
        }
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in out and "Traceback" not in err
