import pytest
import torch

from search.training import optim


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


def learning_rates(name, total_steps=100, warmup_steps=0, **arguments):
    optimizer = optim.OPTIMIZERS["sgd"](parameters(), lr=0.4, weight_decay=0.0)
    schedule = optim.build_schedule(optimizer, name, arguments, total_steps, 10, warmup_steps)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.per_batch.step()
    return rates


@pytest.mark.parametrize("name", optim.SCHEDULES.names())
def test_every_schedule_stays_within_the_peak(name):
    rates = learning_rates(name)
    assert len(rates) == 100 and max(rates) <= 0.4 + 1e-9 and min(rates) >= 0


def test_schedules_have_their_shapes():
    assert set(learning_rates("constant")) == {0.4}
    step = learning_rates("step", step_fraction=0.3, gamma=0.5)
    assert step[29] == 0.4 and step[30] == pytest.approx(0.2) and step[60] == pytest.approx(0.1)
    cosine = learning_rates("cosine", warmup_steps=20)
    assert cosine[0] < 0.01 and cosine[20] == pytest.approx(0.4) and cosine[-1] < 0.01
    onecycle = learning_rates("onecycle", pct_start=0.3)
    assert onecycle[0] == pytest.approx(0.4 / 25)
    assert max(onecycle) == pytest.approx(0.4, rel=1e-3)
    assert onecycle.index(max(onecycle)) in (29, 30) and onecycle[-1] < 1e-3


def test_the_other_schedules_have_their_shapes():
    exponential = learning_rates("exponential", gamma_per_run=0.5**10)
    assert exponential[10] == pytest.approx(0.2) and exponential[20] == pytest.approx(0.1)
    polynomial = learning_rates("polynomial", power=1.0)
    assert polynomial[50] == pytest.approx(0.2) and polynomial[-1] == pytest.approx(0.004)
    cyclic = learning_rates("cyclic", cycle_fraction=0.4, base_fraction=0.1)
    assert cyclic[0] == pytest.approx(0.04) and cyclic[20] == pytest.approx(0.4)
    assert cyclic[40] == pytest.approx(0.04) and max(cyclic[40:]) == pytest.approx(0.22)


@pytest.mark.parametrize("name", optim.SCHEDULES.names())
def test_a_warm_up_can_precede_every_schedule(name):
    """Linear warm-up over the first 20 steps, then the schedule as it runs alone over the
    other 80 (non-chainable one-cycle and cyclic included). Its lengths are fractions of the
    whole phase, warm-up included: alone, over 80 steps, they are 100/80 as long."""
    warmed_arguments, alone_arguments = {
        "step": ({"step_fraction": 0.24}, {"step_fraction": 0.3}),
        "cyclic": ({"cycle_fraction": 0.32}, {"cycle_fraction": 0.4}),
        "exponential": ({"gamma_per_run": 0.01}, {"gamma_per_run": 0.01**0.8}),
    }.get(name, ({}, {}))
    warmed = learning_rates(name, 100, warmup_steps=20, **warmed_arguments)
    alone = learning_rates(name, 80, **alone_arguments)
    assert warmed[0] <= 0.4 * optim.WARMUP_START_FACTOR + 1e-12
    assert all(a < b for a, b in zip(warmed[:19], warmed[1:20], strict=True))  # rising
    assert warmed[20:] == pytest.approx(alone, rel=1e-6, abs=1e-12)


def test_plateau_cuts_the_rate_when_the_loss_stalls_for_patience_epochs():
    optimizer = optim.OPTIMIZERS["sgd"](parameters(), lr=0.4, weight_decay=0.0)
    schedule = optim.build_schedule(
        optimizer, "plateau", {"factor": 0.5, "patience_fraction": 0.2}, 100, 10
    )  # 2 of the run's 10 epochs
    rates = []
    for loss in [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.7]:
        for _ in range(10):
            optimizer.step()
            schedule.per_batch.step()  # a no-op: plateau acts per epoch
        schedule.step_epoch(loss)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([0.4, 0.4, 0.4, 0.4, 0.4, 0.2, 0.2])


def test_onecycle_leaves_the_chosen_momentum_alone():
    optimizer = optim.OPTIMIZERS["sgd"](parameters(), lr=0.4, weight_decay=0.0, momentum=0.7)
    optim.SCHEDULES["onecycle"](optimizer, total_steps=10, run_steps=10, steps_per_epoch=5)
    assert optimizer.param_groups[0]["momentum"] == 0.7


@pytest.mark.parametrize("optimizer", optim.OPTIMIZERS.names())
@pytest.mark.parametrize("schedule", optim.SCHEDULES.names())
def test_every_optimizer_runs_under_every_schedule(optimizer, schedule):
    params = parameters()
    built = optim.OPTIMIZERS[optimizer](params, lr=0.01, weight_decay=1e-4)
    scheduled = optim.build_schedule(built, schedule, {}, 20, 5, warmup_steps=2)
    for step in range(20):
        built.zero_grad()
        loss = (params[0] ** 2).sum()
        loss.backward()
        built.step()
        scheduled.per_batch.step()
        if step % 5 == 4:
            scheduled.step_epoch(loss.item())
    assert torch.isfinite(params[0]).all() and (params[0] ** 2).sum() < 3


@pytest.mark.parametrize("name", optim.SCHEDULES.names())
def test_every_schedule_survives_runs_of_a_few_steps(name):
    """A tiny dataset or a one-epoch phase gives a schedule 1 to 8 steps in all."""
    for total in range(1, 9):
        optimizer = optim.OPTIMIZERS["sgd"](parameters(), lr=0.4, weight_decay=0.0)
        schedule = optim.build_schedule(optimizer, name, {}, total, 1, warmup_steps=total // 3)
        for _ in range(total):
            optimizer.step()
            schedule.per_batch.step()
        assert 0 <= optimizer.param_groups[0]["lr"] <= 0.4


def test_a_timm_optimizer_without_foreach_is_built_without_it():
    """The GPU machine's timm (1.0.29) has a LAMB that takes no foreach: asking for it there
    was a TypeError in every trial that sampled LAMB (found by GPU.md's ops section,
    2026-12-04). timm's AdamP takes none in any version: it stands in for that LAMB."""
    params = parameters()
    optimizer = optim.timm_optimizer(params, "adamp", lr=0.1, weight_decay=0.0)
    assert "foreach" not in optimizer.defaults
    assert optim.timm_optimizer(parameters(), "lamb", lr=0.1, weight_decay=0.0).defaults[
        "foreach"
    ] in (True, None)  # True where this timm's LAMB takes it (1.0.30 on), else its default
