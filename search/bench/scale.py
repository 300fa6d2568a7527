"""The scale benchmark (`python -m search.bench --sections workers`): hundreds of worker
processes on one study, each running the product's own trial loop (trial_loop.py), storage,
heartbeats (or the proxy's), retries and exact stopping, with a stand-in objective that sleeps
through its epochs and reports each to the pruner, because a real worker loads torch (780 MB
resident each here: 200 do not fit in 24 GB). Then kill -9 of some workers mid-trial (after
an epoch reported, before the last): their trials must be failed and re-queued within the
grace period, and resumed (the stand-in resumes after the epochs its predecessor reported).
The workers' stderr goes to a file the result names. It imports no torch either."""

import dataclasses
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import optuna
from optuna.trial import TrialState

import spaces
from search import cli
from search.tuning import study
from search.tuning.execution import recovery, trial_loop
from search.tuning.records import keys, ledger
from search.tuning.records.settings import StudySettings
from search.tuning.store import room, storage, urls

SAMPLE_SECONDS = 0.5  # how often the database's connections are counted


class StandIn:
    """A trial of `epochs` epochs of `epoch_seconds` each, its value a sampled x times the
    share of epochs done; a re-run continues after its predecessor's last reported epoch."""

    def __init__(self, epochs: int, epoch_seconds: float):
        self.epochs, self.epoch_seconds = epochs, epoch_seconds
        self.in_hand: int | None = None
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> float:
        return recovery.in_hand(self, trial, lambda: self.run(trial))

    def run(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(keys.WORKER, self.worker)
        x = trial.suggest_float("x", 0.0, 1.0)
        done = 0
        history = trial.user_attrs.get(spaces.RETRY_HISTORY)
        if history:
            before = trial.study.get_trials(deepcopy=False)[history[-1]].intermediate_values
            done = max(before, default=0)
            trial.set_user_attr(keys.RESUMED_AFTER_EPOCH, done)
            for epoch in range(1, done + 1):
                trial.report(before[epoch], epoch)
        value = 0.0
        for epoch in range(done + 1, self.epochs + 1):
            time.sleep(self.epoch_seconds)
            value = x * epoch / self.epochs
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value


def work(storage_url: str, name: str, slot: int, epoch_seconds: float) -> None:
    """One stand-in worker: the product's storage and trial loop around StandIn."""
    settings = trial_loop.read_settings(storage_url, name)
    with trial_loop.join(storage_url, name, settings, slot) as joined:
        objective = StandIn(settings.epochs, epoch_seconds)
        trial_loop.run_trials(joined.study, objective, settings, output="quiet")


@dataclasses.dataclass
class ScaleResult:
    storage: str
    workers: int
    trials: int
    finished: int
    left_running: int
    left_waiting: int  # queued trials nobody ran: re-runs that would be lost
    seconds: float
    trials_per_second: float
    peak_connections: int | None  # the search's (workers', the proxy's), this process's not
    killed: int
    killed_at_epoch: list[int]  # the last epoch each killed trial had reported
    killed_requeued: int
    # where each killed trial's re-run went on from (0: not needed; None: never re-run)
    resumed_after_epoch: list[int | None]
    killed_resumed: int  # re-runs that continued after their predecessor's epochs and ended
    killed_not_needed: int  # re-runs that found the study's target met by trials before them
    slowest_requeue_seconds: float | None
    grace_period: int
    other_workers_failed: int
    worker_log: str  # the workers' stderr


def count_connections(
    database_url: str, stop: threading.Event, ready: threading.Event, peak: list[int]
) -> None:
    """The search's connections to the database, every SAMPLE_SECONDS: every process of this
    product names itself on the server (room.APPLICATION), the workers and the proxy in
    front of them alike; this process's own (the study it created, its counts) are left out.
    `ready` is set once the count is running."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        urls.parse_url(database_url), poolclass=sqlalchemy.pool.NullPool,
        connect_args={"application_name": "scale benchmark's count"},
    )  # fmt: skip
    mine = room.process_name(engine.url)["application_name"]
    query = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
             "AND datname = current_database() AND application_name LIKE %(ours)s "
             "AND application_name <> %(mine)s")  # fmt: skip
    names = {"ours": room.APPLICATION + " %", "mine": mine}
    with engine.connect() as connection:
        ready.set()
        while not stop.wait(SAMPLE_SECONDS):
            peak.append(int(connection.exec_driver_sql(query, names).scalar()))
            connection.rollback()  # statistics views hold still within a transaction
    engine.dispose()


def measure(
    storage_url: str,
    database_url: str,
    workers: int,
    trials: int,
    epochs: int = 4,
    epoch_seconds: float = 0.5,
    kills: int = 0,
    heartbeat_interval: int = 1,
    grace_period: int = 10,
    timeout: float = 1800,
    log_dir: str = ".",
) -> ScaleResult:
    """One study of `trials` stand-in trials run by `workers` processes on `storage_url`
    (the connections counted on `database_url`, the PostgreSQL behind it), `kills` of them
    killed mid-trial once as many trials have finished; the workers' stderr in
    `log_dir`/<study>-workers.log."""
    name = f"scale-{uuid.uuid4().hex[:8]}"
    worker_log = os.path.join(log_dir, f"{name}-workers.log")
    opened = storage.open_storage(storage_url, heartbeat_interval, grace_period)
    settings = StudySettings(
        space="standin", dataset="none", epochs=epochs, trials=trials, sampler="random",
        pruner="none", heartbeat_interval=heartbeat_interval, grace_period=grace_period,
    )  # fmt: skip
    found = study.create_or_resume(opened, name, settings)
    stop, ready, peak = threading.Event(), threading.Event(), [0]
    counter = threading.Thread(target=count_connections, args=(database_url, stop, ready, peak))
    counter.start()
    ready.wait(60)  # a database that cannot be reached fails the count, not the wait
    started = time.monotonic()
    processes = start_workers(storage_url, name, workers, epoch_seconds, worker_log)
    victims, requeued_after = kill_some(found, processes, kills, epochs, started + timeout)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(max(1.0, started + timeout - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    seconds = time.monotonic() - started
    stop.set()
    counter.join()
    killed_pids = {pid for _, pid in victims}
    result = ScaleResult(
        storage=storage_url, workers=workers, trials=trials, seconds=round(seconds, 1),
        peak_connections=max(peak), grace_period=grace_period, worker_log=worker_log,
        other_workers_failed=sum(
            code != 0 for process, code in zip(processes, codes, strict=True)
            if process.pid not in killed_pids
        ),
        **outcome_of(found.get_trials(deepcopy=False), seconds, victims, requeued_after),
    )  # fmt: skip
    optuna.delete_study(study_name=name, storage=opened)  # the figures are all it was for
    storage.close(opened)
    return result


def start_workers(
    storage_url: str, name: str, workers: int, epoch_seconds: float, worker_log: str
) -> list[subprocess.Popen]:
    """The stand-in worker processes, their stderr in `worker_log`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(worker_log, "ab") as log:
        return [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "search.bench.scale",
                    storage_url,
                    name,
                    str(slot),
                    str(epoch_seconds),
                ],
                env=env,
                stderr=log,
            )  # fmt: skip
            for slot in range(workers)
        ]


def outcome_of(
    trials_now: list, seconds: float, victims: list[tuple[int, int]], requeued_after: list[float]
) -> dict:
    """What the study's trials say of the run: finished and left behind, and what became of
    each killed trial's re-run."""
    finished = [t for t in trials_now if t.state in ledger.FINISHED]
    reruns = {t.user_attrs[spaces.RETRY_HISTORY][-1]: t for t in trials_now
              if t.user_attrs.get(spaces.RETRY_HISTORY)}  # fmt: skip
    rerun_of = [reruns.get(number) for number, _ in victims]
    return dict(
        finished=len(finished),
        left_running=sum(t.state == TrialState.RUNNING for t in trials_now),
        left_waiting=sum(t.state == TrialState.WAITING for t in trials_now),
        trials_per_second=round(len(finished) / seconds, 2),
        killed=len(victims),
        killed_at_epoch=[max(trials_now[number].intermediate_values) for number, _ in victims],
        killed_requeued=len(requeued_after),
        resumed_after_epoch=[
            None if rerun is None else rerun.user_attrs.get(keys.RESUMED_AFTER_EPOCH, 0)
            for rerun in rerun_of
        ],
        killed_resumed=sum(
            rerun.state in ledger.FINISHED
            and rerun.user_attrs.get(keys.RESUMED_AFTER_EPOCH, 0) > 0
            for rerun in rerun_of if rerun is not None
        ),
        killed_not_needed=sum(
            bool(rerun.user_attrs.get(keys.NOT_NEEDED)) for rerun in rerun_of if rerun is not None
        ),
        slowest_requeue_seconds=round(max(requeued_after), 1) if requeued_after else None,
    )  # fmt: skip


def kill_some(
    found: optuna.Study,
    processes: list[subprocess.Popen],
    kills: int,
    epochs: int,
    deadline: float,
) -> tuple[list[tuple[int, int]], list[float]]:
    """kill -9 the workers of `kills` running trials mid-trial (an epoch reported, and not
    the last: a trial that has reported every epoch has nothing left to resume), once `kills`
    trials have finished; then wait until each of their trials is failed and re-queued.
    Returns the (trial, pid) pairs killed and the seconds each took to be re-queued."""
    if not kills:
        return [], []
    alive = {process.pid for process in processes}
    while time.monotonic() < deadline:
        trials = found.get_trials(deepcopy=False)
        running = [
            t
            for t in trials
            if t.state == TrialState.RUNNING
            and 0 < max(t.intermediate_values, default=0) < epochs
            and worker_pid(t) in alive
        ]
        if sum(t.state in ledger.FINISHED for t in trials) >= kills and len(running) >= kills:
            break
        time.sleep(0.2)
    # The candidates' workers stopped first, then their trials read again: a trial that
    # ended since the list was read would make the kill hit its worker's next trial (or
    # none), and this wait for a re-run that nothing owes (seen: 3 of 4 re-queued, then a
    # wait to the deadline).
    pids = {worker_pid(t) for t in running}
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    now = found.get_trials(deepcopy=False)
    still = [t for t in running if now[t.number].state == TrialState.RUNNING
             and max(now[t.number].intermediate_values) < epochs]  # fmt: skip
    chosen = random.Random(0).sample(still, min(kills, len(still)))
    victims = [(t.number, worker_pid(t)) for t in chosen]
    killed_at = time.monotonic()
    for _, pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in pids - {pid for _, pid in victims}:
        os.kill(pid, signal.SIGCONT)
    requeued_after: dict[int, float] = {}
    while len(requeued_after) < len(victims) and time.monotonic() < deadline:
        trials = found.get_trials(deepcopy=False)
        queued = {t.user_attrs[spaces.RETRY_HISTORY][-1] for t in trials
                  if t.user_attrs.get(spaces.RETRY_HISTORY)}  # fmt: skip
        for number, _ in victims:
            if number in queued and number not in requeued_after:
                requeued_after[number] = time.monotonic() - killed_at
        time.sleep(0.2)
    return victims, list(requeued_after.values())


def worker_pid(trial) -> int | None:
    """The process that runs `trial` (StandIn records it as host:pid), if it has started."""
    worker = trial.user_attrs.get(keys.WORKER)
    return int(worker.rsplit(":", 1)[1]) if worker else None


def main(argv: list[str] | None = None) -> int:
    url, name, slot, epoch_seconds = sys.argv[1:] if argv is None else argv
    work(url, name, int(slot), float(epoch_seconds))
    return 0


if __name__ == "__main__":  # a refusal (no room on the database, say) is one line
    cli.run_main(main, "search.bench.scale")
