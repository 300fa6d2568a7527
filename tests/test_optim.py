import pytest
import torch

from search import optim


def parameters():
    return [torch.nn.Parameter(torch.ones(3))]


@pytest.mark.parametrize("name", optim.OPTIMIZERS.names())
def test_every_optimizer_steps_downhill(name):
    params = parameters()
    optimizer = optim.OPTIMIZERS[name](params, lr=0.1, weight_decay=1e-4)
    for _ in range(3):
        optimizer.zero_grad()
        (params[0] ** 2).sum().backward()
        optimizer.step()
    assert (params[0] ** 2).sum() < 3


def learning_rates(name, total_steps=100, **arguments):
    optimizer = optim.OPTIMIZERS["sgd"](parameters(), lr=0.4, weight_decay=0.0)
    scheduler = optim.SCHEDULES[name](
        optimizer, total_steps=total_steps, steps_per_epoch=10, **arguments
    )
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("name", optim.SCHEDULES.names())
def test_every_schedule_stays_within_the_peak(name):
    rates = learning_rates(name)
    assert len(rates) == 100 and max(rates) <= 0.4 + 1e-9 and min(rates) >= 0


def test_schedules_have_their_shapes():
    assert set(learning_rates("constant")) == {0.4}
    step = learning_rates("step", step_epochs=3, gamma=0.5)
    assert step[29] == 0.4 and step[30] == pytest.approx(0.2) and step[60] == pytest.approx(0.1)
    cosine = learning_rates("cosine", warmup_fraction=0.2)
    assert cosine[0] < 0.01 and cosine[20] == pytest.approx(0.4) and cosine[-1] < 0.01
    onecycle = learning_rates("onecycle", pct_start=0.3)
    assert onecycle[0] == pytest.approx(0.4 / 25)
    assert max(onecycle) == pytest.approx(0.4, rel=1e-3)
    assert onecycle.index(max(onecycle)) in (29, 30) and onecycle[-1] < 1e-3


def test_onecycle_leaves_the_chosen_momentum_alone():
    optimizer = optim.OPTIMIZERS["sgd"](parameters(), lr=0.4, weight_decay=0.0, momentum=0.7)
    optim.SCHEDULES["onecycle"](optimizer, total_steps=10, steps_per_epoch=5)
    assert optimizer.param_groups[0]["momentum"] == 0.7
