"""Operators dispatched per training step: a proxy for CUDA kernel launches that the CPU can
count. A step that is bound by launches (small batches, small networks) is as fast as its
count is small; search.bench's `ops` section prints the counts.

Counted with a TorchDispatchMode, below autograd, so the backward's operators count too. Of
them, `kernels` leaves out what launches nothing on a GPU: views (detach, t, unsqueeze: they
return an alias of their input), allocations and the profiler's markers. `syncs` counts the
reads of a tensor's value on the host, each of which makes the host wait for the GPU, but for
those of the optimizer's step counters: torch keeps them on the CPU for a GPU model (unless
`capturable`), so reading them waits for nothing.
"""

import collections
import dataclasses

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from search.training import trainer

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

    def __init__(self, on_host: frozenset[int] = frozenset()):
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self.kernels: collections.Counter[str] = collections.Counter()
        self.on_host = on_host  # ids of tensors that stay on the CPU whatever the device
        self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.counts[name] += 1
        if launches_kernel(func):
            self.kernels[name] += 1
        if name in HOST_READS and id(args[0]) not in self.on_host:
            self.syncs += 1
        return func(*args, **(kwargs or {}))


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
    trainer.start_stepping(state)
    chosen = trainer.batches(state, warm_up + steps)
    for index in chosen[:warm_up]:
        trainer.train_step(state, index, 1)
    # The step counters sit in each parameter's state (in a group's, for timm's LAMB), and in
    # the wrapped optimizer's for a wrapper (timm's Lookahead, of Ranger): CPU tensors that a
    # step reads without waiting (RAdam reads each five times a parameter).
    optimizers = [state.optimizer, *(inner for inner in vars(state.optimizer).values()
                                     if isinstance(inner, torch.optim.Optimizer))]  # fmt: skip
    holders = [held for o in optimizers for held in (*o.state.values(), *o.param_groups)]
    counters = frozenset(id(held["step"]) for held in holders if "step" in held)
    with OperatorCounter(counters) as counter:
        for index in chosen[warm_up:]:
            trainer.train_step(state, index, 1)
    return StepCount(
        counter.counts.total() / steps, counter.kernels.total() / steps, counter.syncs / steps,
        steps, counter.kernels.most_common(8),
    )  # fmt: skip
