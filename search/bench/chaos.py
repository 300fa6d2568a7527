"""The chaos soak (`python -m search.bench --sections chaos`): a real fleet run while a seeded
fault injector breaks it, then the guarantees checked, as Jepsen checks a database's.

The fleet: PostgreSQL behind the gRPC proxy (search.proxy), one `search.run` and W-1
`search.worker` processes on one study of a cheap real space (`mlp` pinned small, on the
packaged sample, on the CPU), checkpoints on a small tmpfs of their own. A supervisor restarts
any process that ends with an error, with the same command, as Slurm's --requeue or a
Kubernetes Job's restartPolicy would. Until the study is done (or the soak's minutes are up),
at exponentially spaced random times, the injector picks one fault: SIGKILL a process; SIGSTOP
one past the grace period, then SIGCONT; restart PostgreSQL; restart the proxy; fill the
checkpoint disk for a few seconds; truncate a checkpoint file.

Then, read from PostgreSQL directly: exactly N finished trials and none RUNNING or WAITING;
no epoch trained twice (a re-run resumes where its predecessor last reported), except where
the injector truncated the checkpoint it would have resumed from (counted apart); every kept
checkpoint loadable (but those the injector truncated); every COMPLETE trial's value its last
reported epoch's; no traceback in any log; the last `search.run` and every worker ending with
exit 0. It prints the faults by kind and every violation found."""

import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from registry import UsageError

SPACE = ["--space", "mlp", "--fix", "width=128,depth=1,image_size=0,batch_size=1024",
         "--dataset", "sample", "--device", "cpu"]  # fmt: skip
GRACE_SECONDS = 6  # the study's --grace-period: a frozen worker's trial is failed after it
MAX_RESTARTS = 200  # a process that keeps dying is a violation, not a loop
DISK = "128m"  # the checkpoint tmpfs: the running, kept and paused trials' small mlp
# checkpoints (1.6 MB each, written beside the last while it is replaced), quick to fill
FAULTS = ("kill", "freeze", "postgres", "proxy", "disk", "truncate")


@dataclasses.dataclass
class Member:
    """One process of the fleet: its command, its log, how often it was restarted."""

    name: str
    command: list[str]
    log: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    code: int | None = None  # its last exit code once ended for good

    def start(self, env: dict) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=out, env=env)


@dataclasses.dataclass
class Soak:
    """What the soak holds while it runs."""

    storage: str  # the PostgreSQL URL
    folder: Path
    disk: Path | None  # the checkpoint tmpfs (None: no mount here, no disk faults)
    cluster: list[str] | None  # pg_ctlcluster VERSION main (None: no restarts here)
    port: int
    rng: random.Random
    members: list[Member] = dataclasses.field(default_factory=list)
    proxy: subprocess.Popen | None = None
    frozen: dict[int, float] = dataclasses.field(default_factory=dict)  # pid -> thaw at
    injected: Counter = dataclasses.field(default_factory=Counter)
    # set by SIGTERM or Ctrl-C: the loop ends, and the fleet is taken down, at its next turn
    # (raised at any point instead, KeyboardInterrupt can be swallowed by a weakref callback
    # and the fleet left running)
    stopping: threading.Event = dataclasses.field(default_factory=threading.Event)
    truncated: set[int] = dataclasses.field(default_factory=set)  # trial numbers
    log: list[str] = dataclasses.field(default_factory=list)

    @property
    def env(self) -> dict:
        return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def say(self, line: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {line}")
        print(f"chaos: {line}", flush=True)

    def start_proxy(self) -> None:
        log = (self.folder / "proxy.log").open("ab")
        self.proxy = subprocess.Popen(
            [sys.executable, "-m", "search.proxy", "--storage", self.storage, "--port",
             str(self.port)], stdout=subprocess.PIPE, stderr=log, env=self.env, text=True,
        )  # fmt: skip
        line = self.proxy.stdout.readline()
        if "serving" not in line:
            raise RuntimeError(f"the proxy did not start: {line!r}")

    def live(self) -> list[Member]:
        return [m for m in self.members if m.process and m.process.poll() is None]


def check(args) -> None:
    from search.tuning.store import urls

    if not args.chaos_storage or not args.chaos_storage.startswith("postgresql"):
        raise UsageError("--sections chaos needs --chaos-storage postgresql://... (the "
                         "database the proxy serves)")  # fmt: skip
    urls.check_url(args.chaos_storage)
    if args.chaos_workers < 2:
        raise UsageError("--chaos-workers must be at least 2: search.run and a worker")


def postgres_cluster() -> list[str] | None:
    """pg_ctlcluster's arguments for this machine's PostgreSQL (None: none to restart)."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


@contextlib.contextmanager
def checkpoint_disk(folder: Path):
    """A small tmpfs for the checkpoints (None where mount is not allowed)."""
    where = folder / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(where)],
                             capture_output=True)  # fmt: skip
    try:
        yield where if mounted.returncode == 0 else None
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(args) -> dict:
    """The soak: its fleet, faults and invariants, as one result."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-") as folder:
        folder = Path(folder)
        with checkpoint_disk(folder) as disk:
            soak = Soak(args.chaos_storage, folder, disk, postgres_cluster(), free_port(),
                        random.Random(args.chaos_seed))  # fmt: skip
            name = f"chaos-{uuid.uuid4().hex[:8]}"
            checkpoints = disk or folder / "checkpoints"
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, lambda *_: soak.stopping.set())
            soak.start_proxy()
            try:
                create(soak, name, args, checkpoints)
                fault_seconds = drive(soak, name, args)
                if soak.stopping.is_set():
                    raise KeyboardInterrupt
                settle(soak)
                violations, counts = invariants(soak, name, args.chaos_trials, checkpoints)
            finally:
                thaw(soak, float("inf"))
                for member in soak.members:
                    if member.process and member.process.poll() is None:
                        member.process.kill()
                        member.process.wait()
                if soak.proxy:
                    soak.proxy.kill()
                restore_postgres(soak)
            logs = {m.name: m.log.read_text(errors="replace")[-2000:] for m in soak.members
                    if violations and m.log.exists()}  # fmt: skip
    return {
        "minutes": round((time.monotonic() - started) / 60, 2),
        "fault_minutes": round(fault_seconds / 60, 2), "trials": args.chaos_trials,
        "workers": args.chaos_workers, "seed": args.chaos_seed,
        "faults": dict(sorted(soak.injected.items())), "faults_total": sum(soak.injected.values()),
        "not_injectable": [k for k in FAULTS if not injectable(soak, k)],
        "restarts": sum(m.restarts for m in soak.members), **counts,
        "violations": violations, "events": soak.log[-200:], "logs_on_violation": logs,
    }  # fmt: skip


def create(soak: Soak, name: str, args, checkpoints: Path) -> None:
    """The study, by search.run --create-only; then the fleet, started."""
    url = f"grpc://127.0.0.1:{soak.port}"
    common = ["--study", name, "--storage", url, "--quiet"]
    run_command = [
        sys.executable, "-m", "search.run", *SPACE, "--epochs", str(args.chaos_epochs),
        "--trials", str(args.chaos_trials), "--checkpoint-dir", str(checkpoints),
        # the default pauses pruned trials: their checkpoints bounded too, for the small disk
        "--keep-checkpoints", "3", "--keep-paused", "4", "--heartbeat-interval", "1",
        "--grace-period", str(GRACE_SECONDS), "--seed", str(args.chaos_seed), *common,
    ]  # fmt: skip
    made = subprocess.run([*run_command, "--create-only"], capture_output=True, text=True,
                          env=soak.env)  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"the study was not created: {made.stderr.strip()[-500:]}")
    soak.members.append(Member("search.run", run_command, soak.folder / "search.run.log"))
    for slot in range(1, args.chaos_workers):
        command = [sys.executable, "-m", "search.worker", "--device", "cpu", "--slot",
                   str(slot), *common]  # fmt: skip
        soak.members.append(Member(f"worker-{slot}", command, soak.folder / f"w{slot}.log"))
    for member in soak.members:
        member.start(soak.env)


def study_done(storage: str, name: str, target: int) -> bool:
    """Whether the study holds its trials (False while PostgreSQL is away)."""
    import optuna

    from search.tuning.records import ledger

    try:
        found = optuna.load_study(study_name=name, storage=storage)
        return len(found.get_trials(deepcopy=False, states=ledger.FINISHED)) >= target
    except Exception:  # noqa: BLE001  the database is being restarted: not done yet
        return False


def drive(soak: Soak, name: str, args) -> float:
    """Supervise the fleet and inject faults until the study is done and every process has
    ended (faults only within --chaos-minutes). The seconds faults were injected for."""
    began = time.monotonic()
    fault_until = began + 60 * args.chaos_minutes
    next_fault = began + soak.rng.expovariate(1 / args.chaos_fault_seconds)
    done, looked = False, 0.0
    while not soak.stopping.is_set():
        now = time.monotonic()
        supervise(soak)
        thaw(soak, now)
        if now - looked > 2:
            done, looked = study_done(soak.storage, name, args.chaos_trials), now
        if done and not soak.live():
            return min(now, fault_until) - began
        if not done and now >= next_fault and now < fault_until:
            inject(soak)
            next_fault = time.monotonic() + soak.rng.expovariate(1 / args.chaos_fault_seconds)
        if now > fault_until + 60 * args.chaos_hang_minutes:
            soak.say("the fleet did not finish in time")
            return fault_until - began
        time.sleep(0.2)
    return time.monotonic() - began


def supervise(soak: Soak) -> None:
    """Restart each process that ended with an error, as a job scheduler would."""
    for member in soak.members:
        code = member.process.poll() if member.process else None
        if code is None or member.code is not None:
            continue
        if code == 0 or member.restarts >= MAX_RESTARTS:
            member.code = code
            continue
        member.restarts += 1
        soak.say(f"{member.name} ended with {code}; restarted ({member.restarts})")
        member.start(soak.env)


def thaw(soak: Soak, now: float) -> None:
    for pid, at in list(soak.frozen.items()):
        if now >= at:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            del soak.frozen[pid]


def injectable(soak: Soak, kind: str) -> bool:
    return {"postgres": soak.cluster is not None, "disk": soak.disk is not None}.get(kind, True)


def inject(soak: Soak) -> None:
    """One fault, chosen by the soak's seeded generator among those this machine allows."""
    kinds = [k for k in FAULTS if injectable(soak, k)]
    kind = soak.rng.choice(kinds)
    if INJECT[kind](soak):
        soak.injected[kind] += 1


def kill(soak: Soak) -> bool:
    victims = [m for m in soak.live() if m.process.pid not in soak.frozen]
    if not victims:
        return False
    victim = soak.rng.choice(victims)
    victim.process.kill()
    soak.say(f"SIGKILL {victim.name}")
    return True


def freeze(soak: Soak) -> bool:
    victims = [m for m in soak.live() if m.process.pid not in soak.frozen]
    if not victims:
        return False
    victim = soak.rng.choice(victims)
    os.kill(victim.process.pid, signal.SIGSTOP)
    soak.frozen[victim.process.pid] = time.monotonic() + GRACE_SECONDS + soak.rng.uniform(2, 6)
    soak.say(f"SIGSTOP {victim.name} past the grace period")
    return True


def for_a_while(soak: Soak, what: str, low: float, high: float, restore) -> bool:
    """A fault held for a few seconds (uniform in [low, high]), said, then undone."""
    held = soak.rng.uniform(low, high)
    soak.say(f"{what} for {held:.1f} s")
    time.sleep(held)
    restore()
    return True


def restart_postgres(soak: Soak) -> bool:
    subprocess.run([*soak.cluster, "stop"], capture_output=True, check=False)
    return for_a_while(soak, "PostgreSQL stopped", 1, 6, lambda: restore_postgres(soak))


def restore_postgres(soak: Soak) -> None:
    if soak.cluster is not None:  # already up: pg_ctlcluster says so and exits 2
        subprocess.run([*soak.cluster, "start"], capture_output=True, check=False)


def restart_proxy(soak: Soak) -> bool:
    soak.proxy.terminate()
    soak.proxy.wait()
    return for_a_while(soak, "the proxy stopped", 0.5, 5, soak.start_proxy)


def fill_disk(soak: Soak) -> bool:
    filler = soak.disk / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * (1 << 20))
    return for_a_while(soak, "the checkpoint disk full", 2, 8, filler.unlink)


def truncate(soak: Soak) -> bool:
    from search.tuning.execution.checkpoints import CHECKPOINT_NAME

    root = soak.disk or soak.folder / "checkpoints"
    found = sorted(p for p in root.rglob("trial-*.pt") if CHECKPOINT_NAME.match(p.name))
    if not found:
        return False
    chosen = soak.rng.choice(found)
    with contextlib.suppress(OSError):  # removed by its worker meanwhile: no fault
        size = chosen.stat().st_size
        with open(chosen, "r+b") as out:
            out.truncate(size // 2)
        soak.truncated.add(int(CHECKPOINT_NAME.match(chosen.name).group(1)))
        soak.say(f"{chosen.name} truncated to {size // 2} bytes")
        return True
    return False


INJECT = {"kill": kill, "freeze": freeze, "postgres": restart_postgres, "proxy": restart_proxy,
          "disk": fill_disk, "truncate": truncate}  # fmt: skip


def settle(soak: Soak) -> None:
    """Every frozen process thawed, the database and the proxy up, and each process's last
    exit code recorded (one that ended between the supervisor's look and the loop's last)."""
    for member in soak.members:
        if member.code is None and member.process and member.process.poll() is not None:
            member.code = member.process.returncode
    thaw(soak, float("inf"))
    restore_postgres(soak)
    if soak.proxy.poll() is not None:
        soak.start_proxy()


def invariants(soak: Soak, name: str, target: int, checkpoints: Path):
    """The violations found, and the counts they were found among."""
    import optuna
    import torch
    from optuna.trial import TrialState

    import spaces
    from search.tuning.records import keys, ledger

    violations = []
    trials = optuna.load_study(study_name=name, storage=soak.storage).get_trials(deepcopy=False)
    finished = ledger.finished(ledger.count_by_state(trials))  # as --trials counts: a paused
    # trial and its continuation once (the default pauses)
    if finished != target:
        violations.append(f"{finished} finished trials, not {target}")
    for state in (TrialState.RUNNING, TrialState.WAITING):
        left = [t.number for t in trials if t.state == state]
        if left:
            violations.append(f"trials left {state.name}: {left}")
    twice, lost = twice_trained(trials, soak.truncated, spaces, keys)
    violations += [f"trial {n}: {e} epoch(s) trained twice" for n, e in twice]
    for trial in trials:
        if trial.state == TrialState.COMPLETE and trial.intermediate_values:
            last = trial.intermediate_values[max(trial.intermediate_values)]
            if trial.value != last:
                violations.append(f"trial {trial.number}: value {trial.value}, last epoch {last}")
    unreadable = 0
    for path in sorted(checkpoints.rglob("trial-*.pt")):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001  any failure to load is what is counted
            number = int(path.stem.split("-")[1])
            if number in soak.truncated:
                unreadable += 1
            else:
                violations.append(f"{path.name} cannot be loaded")
    for member in soak.members:
        text = member.log.read_text(errors="replace")
        if "Traceback" in text:
            violations.append(f"a traceback in {member.name}'s log")
        if member.code != 0:
            violations.append(f"{member.name} ended with exit code {member.code}")
    if "Traceback" in (soak.folder / "proxy.log").read_text(errors="replace"):
        violations.append("a traceback in the proxy's log")
    counts = {
        "finished": finished, "failed": sum(t.state == TrialState.FAIL for t in trials),
        "reruns": sum(bool(t.user_attrs.get(keys.RETRY_HISTORY)) for t in trials),
        "epochs_lost_to_truncation": lost, "truncated_unloadable": unreadable,
    }  # fmt: skip
    return violations, counts


def twice_trained(trials, truncated: set[int], spaces, keys) -> tuple[list[tuple[int, int]], int]:
    """Re-runs that trained again epochs their predecessor had reported: (trial, epochs) where
    no truncation explains it, and the epochs that truncations cost."""
    twice, lost = [], 0
    for trial in trials:
        history = trial.user_attrs.get(keys.RETRY_HISTORY)
        if not history or keys.WORKER not in trial.user_attrs:
            continue  # not a re-run, or one that never started training
        before = trials[history[-1]]
        reported = max(before.intermediate_values, default=0)
        again = reported - trial.user_attrs.get(keys.RESUMED_AFTER_EPOCH, 0)
        if again <= 0:
            continue
        if truncated & set(spaces.lineage(trial)):
            lost += again
        else:
            twice.append((trial.number, again))
    return twice, lost


def main_section(args, argv) -> int:
    """search.bench --sections chaos: the soak, printed as its faults and violations."""
    from registry import files

    check(args)
    result = run(args)
    print(f"chaos: {result['faults_total']} faults in {result['fault_minutes']} min "
          f"({', '.join(f'{k} {v}' for k, v in result['faults'].items())}); "
          f"{result['restarts']} restarts; {result['finished']} finished trials; "
          f"{len(result['violations'])} violation(s)")  # fmt: skip
    for violation in result["violations"]:
        print(f"chaos: violation: {violation}")
    if args.json:
        document = {"command": ["python", "-m", "search.bench", *(argv or sys.argv[1:])],
                    "chaos": result}  # fmt: skip
        files.write_text(args.json, json.dumps(document, indent=2) + "\n")
    return 1 if result["violations"] else 0
