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


def test_the_other_schedules_have_their_shapes():
    exponential = learning_rates("exponential", gamma=0.5)
    assert exponential[10] == pytest.approx(0.2) and exponential[20] == pytest.approx(0.1)
    polynomial = learning_rates("polynomial", power=1.0)
    assert polynomial[50] == pytest.approx(0.2) and polynomial[-1] == pytest.approx(0.004)
    cyclic = learning_rates("cyclic", cycle_epochs=4.0, base_fraction=0.1)
    assert cyclic[0] == pytest.approx(0.04) and cyclic[20] == pytest.approx(0.4)
    assert cyclic[40] == pytest.approx(0.04) and max(cyclic[40:]) == pytest.approx(0.22)


def test_onecycle_leaves_the_chosen_momentum_alone():
    optimizer = optim.OPTIMIZERS["sgd"](parameters(), lr=0.4, weight_decay=0.0, momentum=0.7)
    optim.SCHEDULES["onecycle"](optimizer, total_steps=10, steps_per_epoch=5)
    assert optimizer.param_groups[0]["momentum"] == 0.7


@pytest.mark.parametrize("optimizer", optim.OPTIMIZERS.names())
@pytest.mark.parametrize("schedule", optim.SCHEDULES.names())
def test_every_optimizer_runs_under_every_schedule(optimizer, schedule):
    params = parameters()
    built = optim.OPTIMIZERS[optimizer](params, lr=0.01, weight_decay=1e-4)
    scheduler = optim.SCHEDULES[schedule](built, total_steps=20, steps_per_epoch=5)
    for _ in range(20):
        built.zero_grad()
        (params[0] ** 2).sum().backward()
        built.step()
        scheduler.step()
    assert torch.isfinite(params[0]).all() and (params[0] ** 2).sum() < 3
