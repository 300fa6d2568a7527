"""Many workers on one study: real worker processes, real SQLite files, the real PostgreSQL."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from search import run
from search.tuning.execution import memory
from search.tuning.records import ledger
from tests import postgres
from tests.conftest import REPO, run_command, run_tiny_study
from tests.spaces_for_tests import RENDEZVOUS

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Heartbeats every second; a trial is dead after 6 s without one (the chaos soak's grace, which
# held through its 30 minutes of eight workers on 2 cores): a live worker on a loaded 2-core
# machine never goes that long without a beat, a killed one is noticed soon after.
GRACE_SECONDS = 6
TEST_SPACES = ["--space-module", "tests.spaces_for_tests", "--dataset", "sample"]


def check_all_accounted_for(study: optuna.Study, target: int) -> None:
    trials = study.get_trials()
    # as --trials counts: a paused trial and its continuation once (the default pauses)
    assert ledger.finished(ledger.count_by_state(trials)) == target
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retried = {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}
    for trial in trials:  # a trial failed by its worker says why; one failed by heartbeats
        if trial.state == TrialState.FAIL:  # (its worker died) or cut off was re-run
            assert trial.user_attrs.get("fail_reason") or trial.number in retried


# On SQLite, through search.run's own spawning; exactly-N on PostgreSQL, with 30 workers and
# kills, is tests/test_scale.py's (it ran here too, at 47 s, until that covered it). 8 workers:
# with 16 (each a new interpreter importing torch and torch._dynamo, ~5 s of CPU) this took
# 55-68 s of the suite's 10 minutes on 2 cores.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_eight_workers_finish_exactly_the_requested_trials(backend, tmp_path, monkeypatch):
    """All 8 take part, however slowly the machine starts them: each trial waits until every
    worker has started one (tests/spaces_for_tests.py's rendezvous), then they race to 16, so up
    to 7 of them may start a trial that is no longer needed."""
    name = f"many-{uuid.uuid4().hex[:8]}"
    storage = f"sqlite:///{tmp_path / 'many.db'}" if backend == "sqlite" else postgres.URL
    monkeypatch.setenv(RENDEZVOUS, "8")
    result = run_command(
        "search.run", "--space", "test_rendezvous", *TEST_SPACES, "--epochs", "1",
        "--trials", "16", "--sampler", "random", "--workers-per-gpu", "8", "--storage", storage,
        "--study", name, cwd=tmp_path, timeout=1800,
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        assert "8 worker(s) on cpu" in result.stdout
        study = optuna.load_study(study_name=name, storage=storage)
        check_all_accounted_for(study, 16)
        workers = {t.user_attrs["worker"] for t in study.get_trials(states=FINISHED)}
        assert len(workers) == 8
        surplus = study.get_trials(states=(TrialState.FAIL,))
        assert all(t.user_attrs.get("not_needed") for t in surplus)
        assert not surplus or f"({len(surplus)} of them not needed)" in result.stdout
        assert "database is locked" not in result.stderr
    finally:
        if backend == "postgresql":
            optuna.delete_study(study_name=name, storage=storage)


# Waits end on the event they wait for; this only stops a test that would hang for good.
HANG_GUARD_SECONDS = 900


def wait_for(predicate, seconds: float = HANG_GUARD_SECONDS, process=None):
    """predicate()'s first true value; fails at once if `process` ends first (what was awaited
    can no longer happen), or after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) first")
        time.sleep(0.2)
    raise AssertionError(f"still waiting after {seconds} s")


def start(command: list[str], cwd) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def trial_mid_training(name: str, storage: str):
    """A RUNNING trial that has reported at least one epoch, or None."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    running = study.get_trials(states=(TrialState.RUNNING,))
    return next((t for t in running if t.intermediate_values), None)


def test_a_killed_worker_s_trial_fails_and_is_retried(tmp_path):
    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    command = [
        sys.executable, "-m", "search.run", "--space", "test_hopeless_lr", *TEST_SPACES,
        "--epochs", "10", "--trials", "6", "--pruner", "none", "--workers-per-gpu", "2",
        "--heartbeat-interval", "1", "--grace-period", str(GRACE_SECONDS), "--storage", storage,
    ]  # fmt: skip
    parent = start(command, tmp_path)
    victim = wait_for(
        lambda: trial_mid_training("test_hopeless_lr-sample", storage), process=parent
    )
    os.kill(int(victim.user_attrs["worker"].split(":")[1]), signal.SIGKILL)
    out, err = parent.communicate(timeout=HANG_GUARD_SECONDS)

    # a worker died, and the parent says so, but the study has every trial it was run for
    assert parent.returncode == 0
    assert "1 of 2 workers failed" in err and "Traceback" not in err
    assert "the study reached its target although some of its workers failed" in err
    study = optuna.load_study(study_name="test_hopeless_lr-sample", storage=storage)
    check_all_accounted_for(study, 6)
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs["fail_reason"].startswith("killed or cut off: no heartbeat for")
    retries = [
        t for t in study.trials
        if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim.number
    ]  # fmt: skip
    assert len(retries) == 1
    assert retries[0].params == killed.params and retries[0].state in FINISHED


def test_faults_end_one_trial_each_and_the_worker_goes_on(tmp_path):
    storage = f"sqlite:///{tmp_path / 'faults.db'}"
    argv = [
        "--space", "test_faults", *TEST_SPACES, "--epochs", "1", "--trials", "4",
        "--storage", storage, "--checkpoint-dir", str(tmp_path / "checkpoints"),
    ]  # fmt: skip
    assert run.main(argv) == 0
    study = optuna.load_study(study_name="test_faults-sample", storage=storage)
    check_all_accounted_for(study, 4)
    assert len(study.trials) == 7  # none, oom, nan, error, none, oom, nan: 4 finished
    by_fault: dict[str, list] = {}
    for trial in study.trials:
        by_fault.setdefault(trial.user_attrs["fault"], []).append(trial)
    assert set(by_fault) == {"none", "out_of_memory", "nan", "error"}
    for trial in by_fault["out_of_memory"]:
        assert trial.state == TrialState.FAIL
        assert trial.user_attrs["fail_reason"].startswith("out of memory on cpu")
    for trial in by_fault["nan"]:
        assert trial.state == TrialState.PRUNED
        assert "the training loss became nan" in trial.user_attrs["prune_reason"]
    for trial in by_fault["error"]:
        assert trial.state == TrialState.FAIL
        assert "unknown activation 'no_such_activation'" in trial.user_attrs["fail_reason"]
        assert "Traceback" in trial.user_attrs["traceback"]
    assert all(t.state == TrialState.COMPLETE for t in by_fault["none"])


@pytest.mark.parametrize("through_proxy", [False, True], ids=["sqlite", "proxy"])
def test_a_live_trial_failed_from_outside_is_dropped_and_the_worker_goes_on(
    tmp_path, run_here, through_proxy
):
    """A false verdict (the proxy's watch under load, an operator): trial 0 is marked FAIL by
    someone else as it starts. Its worker no longer dies of Optuna's "Cannot tell a FAIL
    trial", nor waits for a storage it never lost (through the proxy, the refusal is gRPC's
    FAILED_PRECONDITION): it says in one line which trial, and who failed it, and runs the
    next two."""
    from tests.test_resume import free_port

    name = f"outside-{uuid.uuid4().hex[:8]}"
    storage = postgres.URL if through_proxy else f"sqlite:///{tmp_path / 'outside.db'}"
    proxy = serve_proxy(port := free_port(), tmp_path) if through_proxy else None
    try:
        result = run_here(
            "search.run", "--space", "test_failed_from_outside", *TEST_SPACES, "--epochs", "1",
            "--trials", "2", "--study", name, "--checkpoint-dir", "", "--storage",
            f"grpc://localhost:{port}" if proxy else storage, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        said = [line for line in result.stderr.splitlines() if "trial 0" in line]
        assert said == [
            "search.worker: trial 0 was marked FAIL by another process while this worker ran "
            "it (an operator failed it); dropped it, and going on"
        ]
        assert "lost the storage" not in result.stderr
        study = optuna.load_study(study_name=name, storage=storage)
        assert [t.state for t in study.trials] == [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    finally:
        if proxy:
            proxy.terminate()
            proxy.communicate()
            postgres.delete_study(name)


def test_a_study_deleted_while_its_worker_runs_ends_the_worker_with_one_line(tmp_path, run_here):
    """optuna delete-study while a worker runs trial 1: no traceback from deep in Optuna (a
    KeyError, then an UnboundLocalError in its tell, seen on Slurm), one line and exit 1."""
    storage = f"sqlite:///{tmp_path / 'deleted.db'}"
    result = run_here(
        "search.run", "--space", "test_deleted_from_outside", *TEST_SPACES, "--epochs", "1",
        "--trials", "3", "--storage", storage, "--study", "doomed", "--checkpoint-dir", "",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert lines == [
        "search.run: error: study 'doomed' was deleted while this worker ran it; stopped"
    ], result.stderr
    assert optuna.get_all_study_names(storage) == []


def test_the_collection_after_each_trial_skips_the_heap_the_worker_started_with(tmp_path):
    """Optuna collects garbage after every trial (gc_after_trial); the objects the worker
    had before its first trial, torch and torch._dynamo loaded, are frozen out of it during
    the trials, and thawed after."""
    import gc

    storage = f"sqlite:///{tmp_path / 'heap.db'}"
    argv = ["--space", "test_heap", *TEST_SPACES, "--epochs", "1", "--trials", "2",
            "--storage", storage, "--checkpoint-dir", str(tmp_path / "checkpoints")]  # fmt: skip
    assert run.main(argv) == 0
    trials = optuna.load_study(study_name="test_heap-sample", storage=storage).trials
    assert all(t.user_attrs["dynamo_loaded"] for t in trials)
    assert all(t.user_attrs["frozen_objects"] > 100_000 for t in trials)  # torch alone: ~300k
    first, second = (t.user_attrs["frozen_objects"] for t in trials)
    assert second > first  # what the first trial left alive is frozen too (SurvivorsFrozen)
    assert gc.get_freeze_count() == 0


def test_a_cycle_frozen_after_a_trial_is_collected_at_the_next_sweep():
    """What survives a trial is frozen out of the collections after it, so a cycle that dies
    later is not collected at once; it is at the next sweep, every sweep_every trials."""
    import gc
    import weakref

    class Node:
        pass

    survivors = memory.SurvivorsFrozen(sweep_every=3)
    with memory.startup_heap_frozen():
        node = Node()
        node.self = node  # a cycle: only the collector frees it
        alive = weakref.ref(node)
        survivors()  # trial 1 ends with the node alive: frozen
        del node
        gc.collect()  # as Optuna's after trial 2
        survivors()
        assert alive() is not None
        survivors()  # trial 3: the sweep
        assert alive() is None
    assert gc.get_freeze_count() == 0


def test_worker_joins_a_study_and_reads_how_to_run_it(tmp_path, run_here):
    storage = f"sqlite:///{tmp_path / 'join.db'}"
    created = run_here("search.run", "--space", "test_tiny", *TEST_SPACES, "--epochs", "1",
                       "--trials", "2", "--storage", storage, cwd=tmp_path)  # fmt: skip
    assert created.returncode == 0, created.stderr
    study = optuna.load_study(study_name="test_tiny-sample", storage=storage)
    study.set_user_attr("trials", 4)  # as a later `search.run --trials 4` would
    joined = run_here("search.worker", "--study", "test_tiny-sample", "--storage", storage,
                      cwd=tmp_path)  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    check_all_accounted_for(optuna.load_study(study_name="test_tiny-sample", storage=storage), 4)
    assert "[4/4]" in joined.stdout


@pytest.mark.parametrize(
    "storage, code, message",
    [
        ("sqlite:///{tmp}/none.db", 2, "no study storage at"),  # and none is created
        ("postgresql://postgres@127.0.0.1:1/test", 1, "cannot reach storage postgresql"),
        ("postgresql://postgres@127.0.0.1:5432/test", 2, "no study named 'ghost'"),
        ("not-a-url", 2, "--storage 'not-a-url' is not a URL"),
    ],
)
def test_worker_refuses_what_it_cannot_join(tmp_path, storage, code, message, run_here):
    result = run_here("search.worker", "--study", "ghost",
                      "--storage", storage.format(tmp=tmp_path), cwd=tmp_path)  # fmt: skip
    assert not (tmp_path / "none.db").exists()
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def drain(stream, into: list[str]) -> None:
    for line in stream:
        into.append(line)


def finished_in_postgres(name: str, storage=None) -> int:
    """The finished trials of study `name` on the test PostgreSQL (0 before it exists), read
    through `storage` (one of postgres.storage()) or a new one."""
    try:
        study = optuna.load_study(study_name=name, storage=storage or postgres.storage())
    except KeyError:
        return 0
    return len(study.get_trials(states=FINISHED))


def postgres_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def test_workers_survive_a_postgresql_restart(tmp_path):
    name = f"restart-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "search.run", "--space", "test_tiny", *TEST_SPACES, "--epochs", "2",
        "--trials", "24", "--sampler", "random", "--workers-per-gpu", "3",
        "--heartbeat-interval", "1", "--grace-period", str(GRACE_SECONDS), "--storage", postgres.URL,
        "--study", name,
    ]  # fmt: skip
    parent = start(command, tmp_path)
    try:
        wait_for(lambda: finished_in_postgres(name) >= 5, process=parent)
        outputs = {"out": [], "err": []}
        readers = [threading.Thread(target=drain, args=(stream, outputs[key]), daemon=True)
                   for key, stream in (("out", parent.stdout), ("err", parent.stderr))]  # fmt: skip
        for reader in readers:
            reader.start()
        cluster = ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main"]
        subprocess.run([*cluster, "stop"], check=True, capture_output=True)
        try:  # down until a worker has noticed (a restart quicker than every worker's next
            # query goes unseen: pool_pre_ping reconnects), then up again
            wait_for(lambda: any("lost the storage" in line for line in outputs["err"]))
        finally:
            subprocess.run([*cluster, "start"], check=True, capture_output=True)
        parent.wait(timeout=HANG_GUARD_SECONDS)
        for reader in readers:
            reader.join()
        err = "".join(outputs["err"])
        assert parent.returncode == 0, err[-3000:]  # the workers noticed, and went on
        assert "waiting up to 1800 s for it (--storage-patience)" in err
        assert "the storage is back after" in err  # each worker says when it waited, and until
        study = postgres.load_study(name)
        check_all_accounted_for(study, 24)
    finally:
        parent.kill()
        postgres.delete_study(name)


# How long the proxy and the database stay down in the outage test. 8 s in the suite (its
# 10 minutes on 2 cores); README's figures come from OUTAGE_SECONDS=150, longer than the fixed
# 120 s (24 retries x 5 s) after which workers used to give up.
OUTAGE_SECONDS = float(os.environ.get("OUTAGE_SECONDS", 8))


def serve_proxy(port: int, cwd) -> subprocess.Popen:
    served = start([sys.executable, "-m", "search.proxy", "--storage", postgres.URL,
                    "--port", str(port)], cwd)  # fmt: skip
    assert "serving" in served.stdout.readline(), served.communicate()[1]
    return served


def test_workers_ride_out_a_proxy_outage_and_a_database_restart_mid_trial(tmp_path):
    """Workers behind the proxy, mid-trial: the proxy goes away and PostgreSQL restarts while
    it is away, for OUTAGE_SECONDS; then both come back. Every worker says once that it waits
    and once that the storage is back, re-runs the trial the outage cut off at once, and the
    study ends with exactly its trials, none left RUNNING, and search.run exits 0."""
    from tests.test_resume import free_port

    name = f"outage-{uuid.uuid4().hex[:8]}"
    port = free_port()
    proxy = serve_proxy(port, tmp_path)
    command = [
        sys.executable, "-m", "search.run", "--space", "test_tiny", *TEST_SPACES, "--epochs", "6",
        "--trials", "6", "--sampler", "random", "--workers-per-gpu", "2", "--pruner", "none",
        "--heartbeat-interval", "1", "--grace-period", str(GRACE_SECONDS), "--storage",
        f"grpc://localhost:{port}", "--study", name,
    ]  # fmt: skip
    parent = start(command, tmp_path)
    cluster = ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main"]
    try:
        polled = postgres.storage()  # one storage for every look: each look is quick

        def two_finished_and_one_mid_trial():
            if finished_in_postgres(name, polled) < 2:
                return None
            return trial_mid_training(name, polled)

        wait_for(two_finished_and_one_mid_trial, process=parent)
        outputs = {"out": [], "err": []}
        readers = [threading.Thread(target=drain, args=(stream, outputs[key]), daemon=True)
                   for key, stream in (("out", parent.stdout), ("err", parent.stderr))]  # fmt: skip
        for reader in readers:
            reader.start()
        proxy.terminate()
        proxy.communicate()
        subprocess.run([*cluster, "stop"], check=True, capture_output=True)
        down = time.monotonic()
        try:
            wait_for(lambda: sum("lost the storage" in line for line in outputs["err"]) >= 2)
            time.sleep(max(0.0, OUTAGE_SECONDS / 2 - (time.monotonic() - down)))
            subprocess.run([*cluster, "start"], check=True, capture_output=True)
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down)))
        finally:  # up again whatever happened (already up: pg_ctlcluster says so, exit 2)
            subprocess.run([*cluster, "start"], capture_output=True)
            proxy = serve_proxy(port, tmp_path)  # where the workers look for it
        parent.wait(timeout=HANG_GUARD_SECONDS)
        for reader in readers:
            reader.join()
        err = "".join(outputs["err"])
        print(f"down {OUTAGE_SECONDS:g} s; what the workers said:", *(
            line.rstrip() for line in outputs["err"] if "storage" in line), sep="\n")  # fmt: skip
        assert parent.returncode == 0, err[-3000:]
        assert err.count("waiting up to 1800 s for it (--storage-patience)") == 2, err[-3000:]
        assert err.count("the storage is back after") == 2, err[-3000:]
        assert "Traceback" not in err
        study = postgres.load_study(name)
        check_all_accounted_for(study, 6)
        cut_off = [t for t in study.trials if t.state == TrialState.FAIL]
        assert cut_off, "the outage cut no trial off: it did not land mid-trial"
        for trial in cut_off:  # re-queued by its own worker, not a grace period later
            assert "heartbeat" not in trial.user_attrs["fail_reason"], trial.user_attrs
    finally:
        parent.kill()
        proxy.terminate()
        proxy.communicate()
        postgres.delete_study(name)


def test_a_worker_gives_up_on_a_lost_storage_after_its_patience_with_one_line(tmp_path):
    """--storage-patience 3 and a PostgreSQL down for longer: the worker waits its 3 s, then
    ends with one line that says so, exit code 1, no traceback."""
    name = f"patience-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "search.run", "--space", "test_tiny", *TEST_SPACES, "--epochs", "1",
        "--trials", "1000", "--storage-patience", "3", "--storage", postgres.URL, "--study", name,
        "--checkpoint-dir", "", "--quiet",
    ]  # fmt: skip
    parent = start(command, tmp_path)
    cluster = ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main"]
    try:
        wait_for(lambda: finished_in_postgres(name) >= 2)
        subprocess.run([*cluster, "stop"], check=True, capture_output=True)
        try:
            out, err = parent.communicate(timeout=HANG_GUARD_SECONDS)
        finally:
            subprocess.run([*cluster, "start"], check=True, capture_output=True)
        assert parent.returncode == 1 and "Traceback" not in err
        assert "lost the storage for good: nothing for" in err
        assert "(--storage-patience 3)" in err
    finally:
        parent.kill()
        wait_for(lambda: subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0)
        postgres.delete_study(name)


def test_each_gpu_worker_sees_only_its_gpu_and_cpu_workers_share_the_cores(monkeypatch):
    from search.tuning.execution.launch import Slot, worker_environment

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert worker_environment(Slot("cuda", 2), count=8)["CUDA_VISIBLE_DEVICES"] == "2"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # what Slurm gives a task of two GPUs
    assert worker_environment(Slot("cuda", 1), count=2)["CUDA_VISIBLE_DEVICES"] == "5"
    cpu = worker_environment(Slot("cpu", None), count=2)
    assert cpu["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))


def test_a_trial_orphaned_before_it_started_is_failed_and_replaced(tmp_path):
    """A worker that loses the storage inside study.ask() leaves a RUNNING trial with no
    heartbeat and no worker: the others must fail it after the grace period, not wait."""
    storage = run_tiny_study(tmp_path, "orphan", epochs=1, trials=2)
    orphan = optuna.load_study(study_name="orphan", storage=storage).ask()
    result = run_command(  # a process of its own, so that its hang guard can end it
        "search.run", "--space", "test_tiny", *TEST_SPACES, "--epochs", "1", "--trials", "3",
        "--storage", storage, "--study", "orphan", "--grace-period", str(GRACE_SECONDS),
        "--heartbeat-interval", "1", cwd=tmp_path, timeout=HANG_GUARD_SECONDS,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="orphan", storage=storage)
    failed = study.trials[orphan.number]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["fail_reason"].startswith("orphaned")
    assert len(study.get_trials(states=FINISHED)) == 3
