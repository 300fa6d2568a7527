"""Optimizers and learning-rate schedules by name, as TrialConfig refers to them.

Optimizer functions take the parameters, the peak learning rate and weight decay, then their
own knobs; those torch lacks come from timm's optimizer factory. Each runs its fewest kernels
a step: torch's fused implementation where torch has one (SGD, Adam, AdamW: one kernel for
the whole update, on the CPU as on CUDA), else the multi-tensor (foreach) one. Schedule
functions return a torch LR scheduler stepped once per batch, so schedules behave the same
whatever the batch size and epoch count; reduce-on-plateau alone is stepped once per epoch, on
a loss.
"""

import dataclasses
import inspect
import math
import re
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch.optim import lr_scheduler

from registry import (
    NonNegativeFloat,
    PositiveFloat,
    Probability,
    Rate,
    Registry,
)

OPTIMIZERS: Registry = Registry("optimizer", supplied=("params", "lr", "weight_decay"))
SCHEDULES: Registry = Registry(
    "schedule", supplied=("optimizer", "total_steps", "run_steps", "steps_per_epoch")
)

Params = Iterable[torch.nn.Parameter]


@OPTIMIZERS.register("sgd")
def sgd(
    params: Params, lr: float, weight_decay: float, momentum: Rate = 0.9, nesterov: bool = False
) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
        fused=True,
    )  # fmt: skip


@OPTIMIZERS.register("adam")
def adam(
    params: Params, lr: float, weight_decay: float, beta1: Rate = 0.9, beta2: Rate = 0.999
) -> torch.optim.Optimizer:
    """Adam with L2 weight decay added to the gradient (the original coupled form)."""
    return torch.optim.Adam(
        params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2), fused=True
    )


@OPTIMIZERS.register("adamw")
def adamw(
    params: Params, lr: float, weight_decay: float, beta1: Rate = 0.9, beta2: Rate = 0.999
) -> torch.optim.Optimizer:
    """AdamW: weight decay decoupled from the adaptive step (Loshchilov & Hutter, 2019)."""
    return torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2), fused=True
    )


@OPTIMIZERS.register("radam")
def radam(
    params: Params, lr: float, weight_decay: float, beta1: Rate = 0.9, beta2: Rate = 0.999
) -> torch.optim.Optimizer:
    """Rectified Adam: Adam with the variance of early steps tamed (no warm-up needed)."""
    return torch.optim.RAdam(
        params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2), foreach=True
    )


def timm_optimizer(params: Params, name: str, **kwargs) -> torch.optim.Optimizer:
    """torch lacks these; timm's optimizer factory has well-kept implementations. Imported
    here, not at the top: timm adds about two seconds to every command's start.

    foreach is asked for only where the class takes it: timm's LAMB gained it in 1.0.30, and
    passing it to an older one (the GPU machine has 1.0.29) is a TypeError in every trial
    that samples LAMB."""
    from timm.optim import create_optimizer_v2, get_optimizer_class

    base = name.rsplit("_", 1)[-1]  # "lookahead_radam": the class under the lookahead
    takes = inspect.signature(get_optimizer_class(base, bind_defaults=False)).parameters
    foreach = True if "foreach" in takes else None
    return create_optimizer_v2(params, opt=name, foreach=foreach, **kwargs)


@OPTIMIZERS.register("lion")
def lion(
    params: Params, lr: float, weight_decay: float, beta1: Rate = 0.9, beta2: Rate = 0.99
) -> torch.optim.Optimizer:
    """Lion (Chen et al., 2023): sign updates, so its lr is 3-10x below AdamW's."""
    return timm_optimizer(params, "lion", lr=lr, weight_decay=weight_decay, betas=(beta1, beta2))


@OPTIMIZERS.register("lamb")
def lamb(
    params: Params, lr: float, weight_decay: float, beta1: Rate = 0.9, beta2: Rate = 0.999
) -> torch.optim.Optimizer:
    """LAMB: Adam with a per-layer trust ratio, for large batches."""
    return timm_optimizer(params, "lamb", lr=lr, weight_decay=weight_decay, betas=(beta1, beta2))


@OPTIMIZERS.register("ranger")
def ranger(params: Params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Ranger: Lookahead over RAdam (report 002's best optimizer)."""
    return timm_optimizer(params, "lookahead_radam", lr=lr, weight_decay=weight_decay)


Optimizer = torch.optim.Optimizer
Scheduler = lr_scheduler.LRScheduler


def peak_lrs(optimizer: Optimizer) -> list[float]:
    """The configured learning rates, even when a warm-up scheduler built first has already
    lowered the current ones (schedulers record the originals as `initial_lr`)."""
    return [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]


# Every schedule argument that is a length is a fraction of the steps its phase runs for (the
# whole run, or a part of it when the config has a second phase; the warm-up included), never
# epochs or steps: a retrain at N times the epochs runs the same curve stretched N-fold.
# build_schedule resolves them to steps. Each schedule gets `total_steps`, the steps it spans
# after any warm-up, and `run_steps`, the phase's, which its lengths are fractions of.
# A length that a fraction puts between two steps falls at the step it reaches: a count of
# fractions passed is floored with this allowance, so that 3 x 0.1 of a run counts 3, as the
# epochs it stands for did.
BOUNDARY = 1e-9


def passed(step: int, run_steps: int, fraction: float) -> int:
    """How many lengths of `fraction` x run_steps have passed by `step`: a function of step /
    run_steps alone, so the same at the same point of a run N times longer."""
    return math.floor(step / run_steps / fraction + BOUNDARY)


@SCHEDULES.register("constant")
def constant(
    optimizer: Optimizer, total_steps: int, run_steps: int, steps_per_epoch: int
) -> Scheduler:
    return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@SCHEDULES.register("step")
def step(
    optimizer: Optimizer,
    total_steps: int,
    run_steps: int,
    steps_per_epoch: int,
    step_fraction: PositiveFloat = 0.3,
    gamma: PositiveFloat = 0.1,
) -> Scheduler:
    """Multiply the learning rate by `gamma` after every `step_fraction` of the run (above 1:
    never). torch's StepLR takes whole steps, which a fraction of a stretched run rounds
    differently."""
    return lr_scheduler.LambdaLR(
        optimizer, lambda at: gamma ** passed(at, run_steps, step_fraction)
    )


@SCHEDULES.register("cosine")
def cosine(
    optimizer: Optimizer, total_steps: int, run_steps: int, steps_per_epoch: int
) -> Scheduler:
    """Cosine decay to 0 (with TrialConfig's warmup_fraction: the usual warm-up + cosine)."""
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))


@SCHEDULES.register("onecycle")
def onecycle(
    optimizer: Optimizer,
    total_steps: int,
    run_steps: int,
    steps_per_epoch: int,
    pct_start: Probability = 0.25,
) -> Scheduler:
    """Smith & Topin's one-cycle: from lr/25 up to the peak lr over `pct_start` of training,
    then down to lr/1e4. Momentum is left as the config chose it, not cycled, so that the
    optimizer's own parameters keep their meaning."""
    # torch divides by the warm-up's length in steps, less one: a run of a few steps needs
    # at least 3 (fewer are stepped, harmlessly) and a warm-up of more than one step.
    total_steps = max(total_steps, 3)
    pct_start = min(max(pct_start, 2 / total_steps), 0.5) if total_steps < 8 else pct_start
    return lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=peak_lrs(optimizer),
        total_steps=total_steps,
        pct_start=pct_start,
        cycle_momentum=False,
    )


@SCHEDULES.register("triangle")
def triangle(
    optimizer: Optimizer,
    total_steps: int,
    run_steps: int,
    steps_per_epoch: int,
    start: NonNegativeFloat = 0.2,
    peak_fraction: Probability = 0.23,
    end: NonNegativeFloat = 0.07,
) -> Scheduler:
    """airbench94's schedule: linear from start x lr up to lr at peak_fraction of the steps,
    then linear down to end x lr at the last step (it warms up by itself). Written as
    airbench writes it, knots at step 0, int(peak_fraction x steps) and steps."""
    knots = (0, int(peak_fraction * total_steps), total_steps)
    factors = (start, 1.0, end)

    def factor(step: int) -> float:
        return float(np.interp(step, knots, factors))

    return lr_scheduler.LambdaLR(optimizer, factor)


@SCHEDULES.register("exponential")
def exponential(
    optimizer: Optimizer,
    total_steps: int,
    run_steps: int,
    steps_per_epoch: int,
    gamma_per_run: PositiveFloat = 0.01,
) -> Scheduler:
    """Multiply the learning rate by `gamma_per_run` over a whole run's length of steps,
    smoothly (a little every batch)."""
    return lr_scheduler.ExponentialLR(optimizer, gamma=gamma_per_run ** (1 / run_steps))


@SCHEDULES.register("polynomial")
def polynomial(
    optimizer: Optimizer,
    total_steps: int,
    run_steps: int,
    steps_per_epoch: int,
    power: NonNegativeFloat = 1.0,
) -> Scheduler:
    """Decay to 0 at the end of training as (1 - progress) ** power; power 1 is linear."""
    return lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=power)


@SCHEDULES.register("cyclic")
def cyclic(
    optimizer: Optimizer,
    total_steps: int,
    run_steps: int,
    steps_per_epoch: int,
    cycle_fraction: PositiveFloat = 0.2,
    base_fraction: Probability = 0.1,
) -> Scheduler:
    """Triangular cycles (Smith, 2017) between base_fraction * lr and lr, each cycle lasting
    cycle_fraction of the run and peaking half as high as the one before (torch's CyclicLR
    in mode triangular2, whose cycles are whole steps long: written here on the run's
    progress, so that a stretched run cycles at the same points)."""

    def factor(at: int) -> float:
        cycles = at / run_steps / cycle_fraction  # cycles begun so far, and how far into this
        done = math.floor(cycles + BOUNDARY)
        height = max(0.0, 1 - abs(2 * (cycles - done) - 1)) / 2**done
        return base_fraction + (1 - base_fraction) * height

    return lr_scheduler.LambdaLR(optimizer, factor)


@SCHEDULES.register("plateau")
def plateau(
    optimizer: Optimizer,
    total_steps: int,
    run_steps: int,
    steps_per_epoch: int,
    factor: Rate = 0.2,
    patience_fraction: NonNegativeFloat = 0.1,
) -> lr_scheduler.ReduceLROnPlateau:
    """Multiply the learning rate by `factor` when the monitored loss has not improved for
    `patience_fraction` of the run's epochs (report 001's best schedule; it looks once an
    epoch, so the patience is a whole number of epochs, rounded)."""
    patience = round(patience_fraction * run_steps / steps_per_epoch)
    return lr_scheduler.ReduceLROnPlateau(optimizer, factor=factor, patience=patience)


WARMUP_START_FACTOR = 1e-3


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What the trainer steps: `per_batch` after every batch, `per_epoch` (reduce-on-plateau,
    if chosen) after every epoch with the monitored loss."""

    per_batch: Scheduler
    per_epoch: lr_scheduler.ReduceLROnPlateau | None = None

    def step_epoch(self, monitored_loss: float) -> None:
        if self.per_epoch is not None:
            self.per_epoch.step(monitored_loss)

    def fast_forward(self, steps: int) -> None:
        """Step the per-batch schedule `steps` times, as the run being resumed did. Its rate
        is a function of the steps taken alone, so it is not saved: what an earlier version
        saved of its schedulers need not fit this one's (step decay was torch's StepLR)."""
        with warnings.catch_warnings():  # no optimizer step comes between these: none is due
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
            for _ in range(steps):
                self.per_batch.step()

    def state_dict(self) -> dict:
        """What the rate depends on besides the steps taken: reduce-on-plateau's memory."""
        return {"per_epoch": None if self.per_epoch is None else self.per_epoch.state_dict()}

    def load_state_dict(self, saved: dict) -> None:
        if self.per_epoch is not None:
            self.per_epoch.load_state_dict(saved["per_epoch"])


def build_schedule(
    optimizer: Optimizer,
    name: str,
    arguments: dict,
    run_steps: int,
    steps_per_epoch: int,
    warmup_steps: int = 0,
) -> Schedule:
    """The named schedule over a phase of `run_steps` steps, after a linear warm-up of
    `warmup_steps` if any: the one place where the schedule's lengths, fractions of the
    phase, become steps. The warm-up is built first, so that the schedule after it reads the
    configured peak rates."""
    warmup = (
        lr_scheduler.LinearLR(optimizer, WARMUP_START_FACTOR, total_iters=warmup_steps)
        if warmup_steps
        else None
    )
    run_steps = max(1, run_steps)
    chosen = SCHEDULES[name](
        optimizer,
        total_steps=max(1, run_steps - warmup_steps),
        run_steps=run_steps,
        steps_per_epoch=steps_per_epoch,
        **arguments,
    )
    if isinstance(chosen, lr_scheduler.ReduceLROnPlateau):
        return Schedule(
            warmup or constant(optimizer, run_steps, run_steps, steps_per_epoch), chosen
        )
    if warmup is None:
        return Schedule(chosen)
    return Schedule(lr_scheduler.SequentialLR(optimizer, [warmup, chosen], [warmup_steps]))
