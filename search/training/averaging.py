"""Weight averaging during training, by name, as TrialConfig's `averaging` chooses it.

Each entry builds an Averager: `step(count)`, called after every optimizer step with the
number of steps taken so far, `finish()`, called before the last evaluation, and the
state a resumed run needs (`state_dict`, `load_state_dict`). "lookahead"
is airbench94's (written here because neither torch's swa_utils nor timm's EMA pulls the
training weights back to the average): every `every` steps the average moves towards the
weights and the weights are set to the average, with a decay that grows as
decay x (progress)^power, so early steps barely look back and late ones average strongly; at
the end the weights become the average. Buffers (BatchNorm statistics) are averaged too.
"""

from typing import Protocol

import torch
from torch import nn

from registry import NonNegativeFloat, PositiveInt, Probability, Registry

AVERAGING: Registry = Registry("weight averaging", supplied=("model", "total_steps"))


class Averager(Protocol):
    def step(self, count: int) -> None: ...

    def finish(self) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, saved: dict) -> None: ...


class NoAveraging:
    def step(self, count: int) -> None:
        pass

    def finish(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, saved: dict) -> None:
        pass


@AVERAGING.register("none")
def none(model: nn.Module, total_steps: int) -> NoAveraging:
    return NoAveraging()


class Lookahead:
    def __init__(self, model: nn.Module, total_steps: int, every: int, decay: float, power: float):
        self.tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
        self.average = [t.detach().clone() for t in self.tensors]
        self.total_steps, self.every, self.decay, self.power = total_steps, every, decay, power

    @torch.no_grad()
    def step(self, count: int) -> None:
        if count % self.every:
            return
        decay = self.decay * (count / self.total_steps) ** self.power
        torch._foreach_lerp_(self.average, self.tensors, 1 - decay)
        torch._foreach_copy_(self.tensors, self.average)

    @torch.no_grad()
    def finish(self) -> None:
        torch._foreach_copy_(self.tensors, self.average)

    def state_dict(self) -> dict:
        return {"average": self.average}

    @torch.no_grad()
    def load_state_dict(self, saved: dict) -> None:
        for average, value in zip(self.average, saved["average"], strict=True):
            average.copy_(value)  # one by one: a checkpoint is read onto the CPU


@AVERAGING.register("lookahead")
def lookahead(
    model: nn.Module,
    total_steps: int,
    every: PositiveInt = 5,
    decay: Probability = 0.95**5,
    power: NonNegativeFloat = 3.0,
) -> Lookahead:
    """airbench94's defaults: every 5 steps, decay 0.95^5 x (step / total)^3."""
    return Lookahead(model, total_steps, every, decay, power)
