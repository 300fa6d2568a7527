"""Placing workers: one process per GPU (pinned with CUDA_VISIBLE_DEVICES) times
--workers-per-gpu, or CPU workers where there is no GPU; the storage is all they share."""

import dataclasses
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from registry import UsageError
from search.training import device

log = logging.getLogger("search.run")

WATCH_SECONDS = 2  # how often the parent looks at the study to show its workers' progress
SHUTDOWN_SECONDS = 60  # how long interrupted workers get to fail their trials cleanly


@dataclasses.dataclass(frozen=True)
class Slot:
    device: str  # as the worker sees it: "cpu" or "cuda" (its one visible GPU)
    gpu: int | None  # the physical GPU index for CUDA_VISIBLE_DEVICES


def plan_slots(device_name: str, gpus: str | None, workers_per_gpu: int) -> list[Slot]:
    if workers_per_gpu < 1:
        raise UsageError("--workers-per-gpu must be at least 1")
    on_device = device.resolve(device_name)
    if on_device.type == "cpu":
        if gpus:
            raise UsageError("--gpus needs CUDA; this run is on the CPU (--device)")
        check_room_for(workers_per_gpu)
        return [Slot("cpu", None)] * workers_per_gpu
    if gpus:
        try:
            indices = [int(index) for index in gpus.split(",")]
        except ValueError:
            raise UsageError(f"--gpus takes indices like 0,1,2, not '{gpus}'") from None
        unknown = [i for i in indices if not 0 <= i < torch.cuda.device_count()]
        if unknown:
            raise UsageError(f"--gpus {gpus}: no GPU {unknown[0]} here")
    elif device_name == "auto":
        indices = list(range(torch.cuda.device_count()))
    else:
        indices = [on_device.index or 0]
    return [Slot("cuda", index) for index in indices for _ in range(workers_per_gpu)]


# What one worker process holds on the CPU (torch, the dataset, MKL's buffers): 780 MB
# measured on 2 workers on the sample (BENCHMARKS.md, "200 workers on one study")
WORKER_MEMORY_BYTES = 800 * 2**20


def check_room_for(workers: int) -> None:
    """Refuse to start more CPU workers than this machine's free memory holds: hundreds of
    processes would each load torch, and the machine would swap or kill them."""
    free = available_memory()
    if free is not None and workers > 1 and workers * WORKER_MEMORY_BYTES > free:
        raise UsageError(
            f"--workers-per-gpu {workers} would start {workers} worker processes on the CPU, "
            f"each about {WORKER_MEMORY_BYTES // 2**20} MB, and {free / 2**30:.1f} GiB are "
            f"free: at most {max(1, free // WORKER_MEMORY_BYTES)} here"
        )


def available_memory() -> int | None:
    """MemAvailable in bytes (Linux's /proc/meminfo); None where it cannot be read."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def slot_device(slot: Slot) -> torch.device:
    """The device of a worker that runs in this process, where no CUDA_VISIBLE_DEVICES pins it."""
    return device.resolve("cpu" if slot.gpu is None else f"cuda:{slot.gpu}")


def worker_environment(slot: Slot, count: int) -> dict[str, str]:
    """The GPU is pinned by CUDA_VISIBLE_DEVICES, an index into the GPUs this process sees: a
    Slurm task given GPU 3 sees it as index 0 and CUDA_VISIBLE_DEVICES=3, which its workers
    keep. The `count` workers of this host share its cores (OMP_NUM_THREADS, unless the user
    set it): each would otherwise start a thread per core, GPU workers too (their data
    fitting, evaluation bookkeeping and the CPU side of every step), and 4 x 16 threads on 16
    cores spend their time switching."""
    env = dict(os.environ)
    if slot.gpu is not None:
        visible = [g for g in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
        env["CUDA_VISIBLE_DEVICES"] = visible[slot.gpu] if visible else str(slot.gpu)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // count)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def worker_command(
    study_name: str, storage_url: str, data_dir: Path, slot: Slot, number: int,
    timeout: float | None,
) -> list[str]:  # fmt: skip
    command = [sys.executable, "-m", "search.worker", "--study", study_name,
               "--storage", storage_url, "--data-dir", str(data_dir),
               "--device", slot.device, "--slot", str(number), "--quiet"]  # fmt: skip
    return command + (["--timeout", str(timeout)] if timeout else [])


def spawn_workers(
    slots: list[Slot],
    study_name: str,
    storage_url: str,
    data_dir: Path,
    timeout: float | None,
    watcher: Callable[[], None],
    first_slot: int = 0,
) -> int:
    """Run one quiet `search.worker` process per slot (numbered from `first_slot`: another
    host's or Slurm task's workers count on from theirs) and wait for all, calling `watcher`
    every few seconds to show progress; Ctrl-C (or SIGTERM) reaches them too. Returns 0, or
    1 if any worker failed."""
    workers = [
        subprocess.Popen(
            worker_command(study_name, storage_url, data_dir, slot, first_slot + n, timeout),
            env=worker_environment(slot, len(slots)),
        )
        for n, slot in enumerate(slots)
    ]
    try:
        while any(worker.poll() is None for worker in workers):
            time.sleep(WATCH_SECONDS)
            watcher()
        watcher()
        codes = [worker.returncode for worker in workers]
    except KeyboardInterrupt:
        for worker in workers:
            worker.send_signal(2)  # SIGINT: each fails and re-queues its trial, and exits
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for worker in workers:
            try:
                worker.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
        raise
    failed = [(n, code) for n, code in enumerate(codes) if code != 0]
    if failed:
        listed = ", ".join(f"worker {n} exited {code}" for n, code in failed)
        log.error("%d of %d workers failed: %s", len(failed), len(workers), listed)
        return 1
    return 0
