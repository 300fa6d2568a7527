"""Trials that resume where they stopped: a trial killed (kill -9, SIGTERM) mid-epoch is re-run
from its last checkpoint and ends exactly as the uninterrupted trial does. Real worker
processes for the runs that are killed (the runs that finish, in this interpreter), a real
SQLite file, the real trainer on the packaged sample."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from tests import postgres
from tests.conftest import REPO, run_here_once
from tests.spaces_for_tests import STALL_AFTER_STEPS, STALL_MARKER

GRACE_SECONDS = 6  # as tests/test_worker.py: a killed worker's trial is stale after 6 s
HANG_GUARD_SECONDS = 900  # waits end on their event; this only stops a test that would hang
EPOCHS = 4
STEPS_PER_EPOCH = 8  # the sample's 4,500 training images in batches of 512
STALL_AT = 2 * STEPS_PER_EPOCH + 3  # in epoch 3, after epoch 2 was checkpointed


def search_command(storage: str, study: str = "resume") -> list[str]:
    return [
        sys.executable, "-m", "search.run", "--space", "test_resumable",
        "--space-module", "tests.spaces_for_tests", "--dataset", "sample",
        "--epochs", str(EPOCHS), "--trials", "1", "--sampler", "random", "--pruner", "none",
        "--heartbeat-interval", "1", "--grace-period", str(GRACE_SECONDS),
        "--storage", storage, "--study", study,
    ]  # fmt: skip


def start(command: list[str], cwd, stall_marker=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if stall_marker is not None:
        env |= {STALL_AFTER_STEPS: str(STALL_AT), STALL_MARKER: str(stall_marker)}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def run_to_the_end(command: list[str], cwd) -> None:
    """A search command run to its end in this interpreter (a new one costs ~5 s of CPU): a
    resuming run is still another process than the one that was killed, as for a user."""
    finished = run_here_once("search.run", *command[3:], cwd=cwd)  # past `python -m search.run`
    assert finished.returncode == 0, finished.stderr[-3000:]


def wait_for_file(path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"still waiting for {path}"
        time.sleep(0.1)


def load(storage: str, study: str = "resume") -> optuna.Study:
    return optuna.load_study(study_name=study, storage=storage)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same one-trial study, never interrupted: what the resumed ones must equal."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    storage = f"sqlite:///{folder / 'studies.db'}"
    run_to_the_end(search_command(storage), folder)
    (trial,) = load(storage).trials
    assert trial.state == TrialState.COMPLETE
    return trial


def stalled_run(tmp_path, storage: str, study: str = "resume") -> subprocess.Popen:
    """A search whose one trial has checkpointed epoch 2 and waits, mid-epoch 3, to be killed."""
    marker = tmp_path / "stalled"
    process = start(search_command(storage, study), tmp_path, stall_marker=marker)
    wait_for_file(marker, process)
    (folder,) = (tmp_path / "checkpoints").glob(f"{study}-*")  # the study's own, by its key
    saved = torch.load(folder / "trial-0.pt", weights_only=True)
    assert saved["epoch"] == 2
    return process


def check_resumed(study: optuna.Study, uninterrupted, tmp_path) -> None:
    """Trial 0 failed; its re-run resumed after epoch 2 and ended exactly as the uninterrupted
    trial: the same value, the same curve reported to the pruner; no checkpoint is left."""
    killed, rerun = study.trials
    assert killed.state == TrialState.FAIL
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(rerun) == 0
    assert rerun.state == TrialState.COMPLETE
    assert rerun.user_attrs["resumed_after_epoch"] == 2
    assert rerun.params == uninterrupted.params
    assert rerun.value == uninterrupted.value
    assert rerun.intermediate_values == uninterrupted.intermediate_values
    assert not list((tmp_path / "checkpoints").rglob("*trial-*"))


def test_a_trial_killed_mid_epoch_resumes_from_its_last_epoch(tmp_path, uninterrupted):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    stalled = stalled_run(tmp_path, storage)
    stalled.kill()  # kill -9: no chance to say anything; heartbeats notice
    stalled.communicate()
    assert load(storage).trials[0].state == TrialState.RUNNING
    run_to_the_end(search_command(storage), tmp_path)  # the same command again
    check_resumed(load(storage), uninterrupted, tmp_path)


def test_sigterm_fails_the_trial_at_once_and_queues_its_resumption(tmp_path, uninterrupted):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    stalled = stalled_run(tmp_path, storage)
    stalled.send_signal(signal.SIGTERM)  # what Slurm and Kubernetes send before a kill
    _, err = stalled.communicate(timeout=HANG_GUARD_SECONDS)
    assert stalled.returncode == 130
    assert err.strip().splitlines()[-1] == (
        "search.run: interrupted; run the same command again to resume"
    )
    killed, queued = load(storage).trials
    assert killed.state == TrialState.FAIL  # not left RUNNING for the heartbeats
    assert killed.user_attrs["fail_reason"] == "interrupted (SIGTERM or Ctrl-C)"
    assert queued.state == TrialState.WAITING
    run_to_the_end(search_command(storage), tmp_path)
    check_resumed(load(storage), uninterrupted, tmp_path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.fixture
def proxy_url(tmp_path):
    """python -m search.proxy in front of the real PostgreSQL, as a user starts it."""
    port = free_port()
    served = start([sys.executable, "-m", "search.proxy", "--storage", postgres.URL,
                    "--port", str(port)], tmp_path)  # fmt: skip
    assert "serving" in served.stdout.readline(), served.communicate()[1]
    yield f"grpc://localhost:{port}"
    served.terminate()
    served.communicate()


def test_behind_the_proxy_a_killed_trial_is_failed_re_queued_and_resumed(
    tmp_path, uninterrupted, proxy_url
):
    """Optuna's proxy has no heartbeats; ours fails the dead worker's trial within the grace
    period, with no worker left to notice, and the next run resumes it."""
    name = f"proxy-{uuid.uuid4().hex[:8]}"
    try:
        stalled = stalled_run(tmp_path, proxy_url, name)
        stalled.kill()
        stalled.communicate()

        def re_queued():
            trials = postgres.load_study(name).trials
            return [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]

        deadline = time.monotonic() + HANG_GUARD_SECONDS
        while not re_queued():
            assert time.monotonic() < deadline, "the proxy never failed the dead trial"
            time.sleep(0.5)
        run_to_the_end(search_command(proxy_url, name), tmp_path)
        check_resumed(postgres.load_study(name), uninterrupted, tmp_path)
    finally:
        postgres.delete_study(name)
