"""How busy the GPU is: sampled from nvidia-smi while a search runs, and measured from
torch.profiler's kernel timeline for the trainer's own epochs."""

import shutil
import subprocess
from collections.abc import Callable

import torch
from torch.autograd import DeviceType

from registry import UsageError

SAMPLE_MILLISECONDS = 500


class UtilizationSampler:
    """`with UtilizationSampler() as sampler:` samples nvidia-smi's utilization.gpu (the share of
    each sample period in which a kernel ran) on every GPU; `sampler.mean` is their mean, as a
    fraction, or None where there is no nvidia-smi."""

    def __init__(self):
        self.mean: float | None = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> "UtilizationSampler":
        if torch.cuda.is_available() and shutil.which("nvidia-smi"):
            self._process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 f"--loop-ms={SAMPLE_MILLISECONDS}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
        return self

    def __exit__(self, *exc_info) -> None:
        if self._process is None:
            return
        self._process.terminate()
        output, _ = self._process.communicate()
        samples = [float(line) for line in output.split() if line.strip().isdigit()]
        self.mean = sum(samples) / len(samples) / 100 if samples else None


def busy_fraction(intervals: list[tuple[float, float]]) -> float:
    """The share of the span from the first start to the last end that is covered by at least
    one (start, end) interval; overlapping ones (several streams) count once."""
    ordered = sorted(intervals)
    covered, reach = 0.0, ordered[0][0]
    for start, end in ordered:
        covered += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return covered / (reach - ordered[0][0])


def profiled_gpu_busy(step: Callable[[], object], warm_up: int, active: int) -> tuple[float, str]:
    """Run `step` warm_up + active times under torch.profiler, recording only the last
    `active` (a window: two whole epochs at batch 512 were about 500,000 events); (the share
    of the time from the window's first GPU operation to its last in which the GPU was
    executing one, a table of the top GPU operations). Gaps are time the GPU waited on the
    CPU."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    window = torch.profiler.schedule(wait=0, warmup=warm_up, active=active, repeat=1)
    with torch.profiler.profile(activities=activities, schedule=window) as profiler:
        for _ in range(warm_up + active):
            step()
            profiler.step()
        torch.cuda.synchronize()
    on_gpu = [event for event in profiler.events() if event.device_type == DeviceType.CUDA]
    if not on_gpu:
        raise UsageError("torch.profiler recorded no GPU activity (is CUPTI installed?)")
    intervals = [(event.time_range.start, event.time_range.end) for event in on_gpu]
    table = profiler.key_averages().table(sort_by="self_device_time_total", row_limit=12)
    return busy_fraction(intervals), table
