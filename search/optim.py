"""Optimizers and learning-rate schedules by name, as TrialConfig refers to them.

Optimizer functions take the parameters, the peak learning rate and weight decay, then their
own knobs; those torch lacks come from timm's optimizer factory. Schedule functions return a torch LR scheduler stepped once per batch, so schedules
behave the same whatever the batch size and epoch count.
"""

from collections.abc import Iterable

import torch
from torch.optim import lr_scheduler

from search.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer", supplied=("params", "lr", "weight_decay"))
SCHEDULES: Registry = Registry("schedule", supplied=("optimizer", "total_steps", "steps_per_epoch"))

Params = Iterable[torch.nn.Parameter]


@OPTIMIZERS.register("sgd")
def sgd(
    params: Params, lr: float, weight_decay: float, momentum: float = 0.9, nesterov: bool = False
) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov
    )


@OPTIMIZERS.register("adam")
def adam(
    params: Params, lr: float, weight_decay: float, beta1: float = 0.9, beta2: float = 0.999
) -> torch.optim.Optimizer:
    """Adam with L2 weight decay added to the gradient (the original coupled form)."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2))


@OPTIMIZERS.register("adamw")
def adamw(
    params: Params, lr: float, weight_decay: float, beta1: float = 0.9, beta2: float = 0.999
) -> torch.optim.Optimizer:
    """AdamW: weight decay decoupled from the adaptive step (Loshchilov & Hutter, 2019)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2))


@OPTIMIZERS.register("radam")
def radam(
    params: Params, lr: float, weight_decay: float, beta1: float = 0.9, beta2: float = 0.999
) -> torch.optim.Optimizer:
    """Rectified Adam: Adam with the variance of early steps tamed (no warm-up needed)."""
    return torch.optim.RAdam(params, lr=lr, weight_decay=weight_decay, betas=(beta1, beta2))


def timm_optimizer(params: Params, name: str, **kwargs) -> torch.optim.Optimizer:
    """torch lacks these; timm's optimizer factory has well-kept implementations. Imported
    here, not at the top: timm adds about two seconds to every command's start."""
    from timm.optim import create_optimizer_v2

    return create_optimizer_v2(params, opt=name, **kwargs)


@OPTIMIZERS.register("lion")
def lion(
    params: Params, lr: float, weight_decay: float, beta1: float = 0.9, beta2: float = 0.99
) -> torch.optim.Optimizer:
    """Lion (Chen et al., 2023): sign updates, so its lr is 3-10x below AdamW's."""
    return timm_optimizer(params, "lion", lr=lr, weight_decay=weight_decay, betas=(beta1, beta2))


@OPTIMIZERS.register("lamb")
def lamb(
    params: Params, lr: float, weight_decay: float, beta1: float = 0.9, beta2: float = 0.999
) -> torch.optim.Optimizer:
    """LAMB: Adam with a per-layer trust ratio, for large batches."""
    return timm_optimizer(params, "lamb", lr=lr, weight_decay=weight_decay, betas=(beta1, beta2))


@OPTIMIZERS.register("ranger")
def ranger(params: Params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Ranger: Lookahead over RAdam (report 002's best optimizer)."""
    return timm_optimizer(params, "lookahead_radam", lr=lr, weight_decay=weight_decay)


Optimizer = torch.optim.Optimizer
Scheduler = lr_scheduler.LRScheduler


@SCHEDULES.register("constant")
def constant(optimizer: Optimizer, total_steps: int, steps_per_epoch: int) -> Scheduler:
    return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@SCHEDULES.register("step")
def step(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    step_epochs: int = 30,
    gamma: float = 0.1,
) -> Scheduler:
    """Multiply the learning rate by `gamma` every `step_epochs` epochs."""
    return lr_scheduler.StepLR(optimizer, step_size=step_epochs * steps_per_epoch, gamma=gamma)


@SCHEDULES.register("cosine")
def cosine(
    optimizer: Optimizer, total_steps: int, steps_per_epoch: int, warmup_fraction: float = 0.0
) -> Scheduler:
    """Linear warm-up over the first `warmup_fraction` of training, then cosine decay to 0."""
    warmup_steps = round(warmup_fraction * total_steps)
    decay = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps))
    if warmup_steps == 0:
        return decay
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=1e-3, total_iters=warmup_steps)
    return lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[warmup_steps])


@SCHEDULES.register("onecycle")
def onecycle(
    optimizer: Optimizer, total_steps: int, steps_per_epoch: int, pct_start: float = 0.25
) -> Scheduler:
    """Smith & Topin's one-cycle: from lr/25 up to the peak lr over `pct_start` of training,
    then down to lr/1e4. Momentum is left as the config chose it, not cycled, so that the
    optimizer's own parameters keep their meaning."""
    return lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in optimizer.param_groups],
        total_steps=total_steps,
        pct_start=pct_start,
        cycle_momentum=False,
    )


@SCHEDULES.register("exponential")
def exponential(
    optimizer: Optimizer, total_steps: int, steps_per_epoch: int, gamma: float = 0.9
) -> Scheduler:
    """Multiply the learning rate by `gamma` per epoch, smoothly (a little every batch)."""
    return lr_scheduler.ExponentialLR(optimizer, gamma=gamma ** (1 / steps_per_epoch))


@SCHEDULES.register("polynomial")
def polynomial(
    optimizer: Optimizer, total_steps: int, steps_per_epoch: int, power: float = 1.0
) -> Scheduler:
    """Decay to 0 at the end of training as (1 - progress) ** power; power 1 is linear."""
    return lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=power)


@SCHEDULES.register("cyclic")
def cyclic(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    cycle_epochs: float = 4.0,
    base_fraction: float = 0.1,
) -> Scheduler:
    """Triangular cycles (Smith, 2017) between base_fraction * lr and lr, each cycle lasting
    cycle_epochs and peaking half as high as the one before."""
    peaks = [group["lr"] for group in optimizer.param_groups]
    half_cycle = max(1, round(cycle_epochs * steps_per_epoch / 2))
    return lr_scheduler.CyclicLR(
        optimizer,
        base_lr=[peak * base_fraction for peak in peaks],
        max_lr=peaks,
        step_size_up=half_cycle,
        mode="triangular2",
        cycle_momentum=False,
    )
