"""Weight averaging: airbench94's lookahead, step by step against its own description."""

import pytest
import torch
from torch import nn

from search.training.averaging import AVERAGING


def test_lookahead_pulls_the_weights_to_their_average_as_airbench_does():
    """airbench's LookaheadState: every 5 steps, average.lerp_(weights, 1 - decay) with
    decay = 0.95^5 x (step / total)^3, then weights = average; at the end weights = average.
    The "optimizer" adds the step number to every float tensor; the reference runs the same
    rules alongside on copies."""
    model = nn.BatchNorm1d(3)  # a weight, a bias and float running statistics
    total = 12
    averager = AVERAGING["lookahead"](model, total)
    floats = [name for name, v in model.state_dict().items() if v.is_floating_point()]
    weights = {name: model.state_dict()[name].clone() for name in floats}
    average = {name: tensor.clone() for name, tensor in weights.items()}
    for step in range(1, total + 1):
        with torch.no_grad():
            for name in floats:
                model.state_dict()[name].add_(float(step))
                weights[name] += step
        averager.step(step)
        if step % 5 == 0:
            decay = 0.95**5 * (step / total) ** 3
            for name in floats:
                average[name] = average[name].lerp(weights[name], 1 - decay)
                weights[name] = average[name].clone()
        for name in floats:
            assert torch.allclose(model.state_dict()[name], weights[name]), (step, name)
    averager.finish()
    for name in floats:
        assert torch.allclose(model.state_dict()[name], average[name]), name
    assert model.num_batches_tracked.dtype == torch.long  # integers are left alone


def test_lookahead_steps_match_a_hand_computed_sequence():
    """Two updates by hand, for one scalar weight starting at 0 that the optimizer raises by 1
    a step, every=2, decay=0.5, power=0 (a constant decay)."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    averager = AVERAGING["lookahead"](model, total_steps=4, every=2, decay=0.5, power=0.0)
    seen = []
    for step in range(1, 5):
        with torch.no_grad():
            model.weight.add_(1.0)
        averager.step(step)
        seen.append(model.weight.item())
    # step 2: average 0 -> lerp(0, 2, 0.5) = 1, weight = 1; step 4: weight 3 -> average 2
    assert seen == [1.0, 1.0, 2.0, 2.0]


def test_no_averaging_leaves_training_alone():
    model = nn.Linear(2, 2)
    before = [p.clone() for p in model.parameters()]
    averager = AVERAGING["none"](model, 10)
    for step in range(1, 11):
        averager.step(step)
    averager.finish()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_unknown_averaging_arguments_are_refused():
    from registry import UsageError

    with pytest.raises(UsageError, match="has no argument every_steps"):
        AVERAGING.check_arguments("lookahead", {"every_steps": 5})
