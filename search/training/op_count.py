"""Operators dispatched per training step: a proxy for CUDA kernel launches that the CPU can
count. A step that is bound by launches (small batches, small networks) is as fast as its
count is small; search.bench's `ops` section prints the counts.

Counted with a TorchDispatchMode, below autograd, so the backward's operators count too. Of
them, `kernels` leaves out what launches nothing on a GPU: views (detach, t, unsqueeze: they
return an alias of their input), allocations and the profiler's markers. `syncs` counts the
reads of a tensor's value on the host, each of which makes the host wait for the GPU.
"""

import collections
import dataclasses

from torch.utils._python_dispatch import TorchDispatchMode

from search.training import config, trainer

NO_KERNEL = {"empty", "empty_strided", "_record_function_enter_new", "_record_function_exit"}
HOST_READS = {"_local_scalar_dense", "item", "equal", "is_nonzero"}


def launches_kernel(func) -> bool:
    returns = func._schema.returns
    is_view = bool(returns) and all(
        r.alias_info is not None and not r.alias_info.is_write for r in returns
    )
    return not is_view and func.overloadpacket.__name__ not in NO_KERNEL


class OperatorCounter(TorchDispatchMode):
    """Counts every aten operator run while it is entered, by name: all of them, and those
    that launch a kernel."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self.kernels: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.counts[name] += 1
        if launches_kernel(func):
            self.kernels[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def syncs(self) -> int:
        return sum(self.counts[name] for name in HOST_READS)


@dataclasses.dataclass(frozen=True)
class StepCount:
    operators: float  # per training step, the mean over the counted steps
    kernels: float  # of those, the ones that launch a kernel on a GPU
    syncs: float  # host reads of a tensor's value
    steps: int
    top: list[tuple[str, int]]  # the kernels most often launched over those steps

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def count_step_operators(state: trainer.TrainingState, steps: int, warm_up: int = 1) -> StepCount:
    """The operators of `steps` real training steps (trainer.train_step) of the state's first
    phase, after `warm_up` steps that are not counted (lazily built optimizer state). Choose
    `steps` as a multiple of anything periodic in the step (lookahead's every 5 steps)."""
    state.start_phase(config.phase_at(state.config, 1))
    state.model.train()
    state.freezer.start_epoch(1)
    size, batches = state.batch_size, []
    while len(batches) < warm_up + steps:  # as many epochs' orders as the steps need
        order = trainer.epoch_order(state)
        batches += [order[i * size : (i + 1) * size] for i in range(state.steps_per_epoch)]
    for index in batches[:warm_up]:
        trainer.train_step(state, index, 1)
    with OperatorCounter() as counter:
        for index in batches[warm_up : warm_up + steps]:
            trainer.train_step(state, index, 1)
    return StepCount(
        counter.counts.total() / steps, counter.kernels.total() / steps, counter.syncs / steps,
        steps, counter.kernels.most_common(8),
    )  # fmt: skip
