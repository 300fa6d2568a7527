"""Spaces that only tests need, loaded the way a user loads their own: --space-module.
Worker processes import this module too, so it must stay importable from the repo root."""

import os
import time
from pathlib import Path

import optuna
import torch

import spaces
from search.training.config import TrialConfig


def tiny_mlp(trial: optuna.Trial, context: spaces.SpaceContext, **changes) -> TrialConfig:
    config = TrialConfig(
        model="mlp",
        model_args={"width": 16, "depth": 1},
        optimizer="sgd",
        lr=0.05,
        schedule="constant",
        batch_size=512,
        epochs=context.epochs,
        seed=context.trial_seed(trial),
        dataset=context.dataset,
    )
    return config.replace(**changes)


@spaces.register_space("test_tiny")
def tiny(trial, context):
    """A trial in a fraction of a second: for many workers and many trials."""
    return tiny_mlp(trial, context, lr=trial.suggest_float("sgd_lr", 1e-3, 0.1, log=True))


@spaces.register_space("test_hopeless_lr")
def hopeless_lr(trial, context):
    """Learning rates from hopeless (1e-7: nothing moves) to fine, for the pruners."""
    return tiny_mlp(
        trial, context, lr=trial.suggest_float("hopeless_lr", 1e-7, 0.1, log=True),
        model_args={"width": 64, "depth": 1}, batch_size=128,
    )  # fmt: skip


@spaces.register_space("test_faults")
def faults(trial, context):
    """Trial N breaks in the (N mod 4)-th way, through the trainer's real code paths."""
    fault = ["none", "out_of_memory", "nan", "error"][trial.number % 4]
    trial.set_user_attr("fault", fault)
    changes = {
        "none": {},
        "out_of_memory": {"model_args": {"width": 10**8, "depth": 1}},  # a 1.2 TB weight
        "nan": {"lr": 1e12},
        "error": {"model_args": {"width": 16, "activation": "no_such_activation"}},
    }[fault]
    return tiny_mlp(trial, context, **changes)


@spaces.register_space("test_heap")
def heap(trial, context):
    """test_tiny, recording how many objects the garbage collector skips (frozen) as the
    trial starts: the worker's startup heap, torch._dynamo's modules among it."""
    import gc
    import sys

    trial.set_user_attr("frozen_objects", gc.get_freeze_count())
    trial.set_user_attr("dynamo_loaded", "torch._dynamo" in sys.modules)
    return tiny(trial, context)


@spaces.register_space("test_widths")
def widths(trial, context):
    """Small MLPs of different sizes: accuracy against parameter count, for --objectives."""
    return tiny_mlp(trial, context, model_args={
        "width": trial.suggest_categorical("width", [4, 16, 64]), "depth": 1})  # fmt: skip


@spaces.register_space("test_two_knobs")
def two_knobs(trial, context):
    """Two continuous parameters, so that CMA-ES and GP model them jointly (one alone, CMA-ES
    hands to its independent sampler)."""
    return tiny_mlp(
        trial, context, lr=trial.suggest_float("sgd_lr", 1e-3, 0.3, log=True),
        optimizer_args={"momentum": trial.suggest_float("sgd_momentum", 0.0, 0.95)},
    )  # fmt: skip


# --warm-start's mechanism on networks that train in a fraction of a second; the product
# spaces' own warm starts are checked point by point in tests/test_spaces.py
spaces.register_warm_starts(
    "test_two_knobs",
    spaces.WarmStart("a test's first known-good point", {"sgd_lr": 0.05, "sgd_momentum": 0.9}),
    spaces.WarmStart("a test's second known-good point", {"sgd_lr": 0.01, "sgd_momentum": 0.0}),
)


@spaces.register_space("test_transfer")
def transfer(trial, context):
    """Ranges that depend on the study's --epochs, as a report's schedule knobs may: a study
    of 2 epochs offers learning rates up to 0.1 and widths 4 and 16, one of 3 or more up to
    0.3 and also 64. For --warm-start-from across budgets."""
    longer = context.epochs >= 3
    widths = [4, 16, 64] if longer else [4, 16]
    return tiny_mlp(
        trial, context, lr=trial.suggest_float("sgd_lr", 1e-3, 0.3 if longer else 0.1, log=True),
        optimizer_args={"momentum": trial.suggest_float("sgd_momentum", 0.0, 0.9, step=0.1)},
        model_args={"width": trial.suggest_categorical("width", widths), "depth": 1},
    )  # fmt: skip


RENDEZVOUS = "SEARCH_TEST_RENDEZVOUS"  # how many worker processes must meet
RENDEZVOUS_SECONDS = 600  # a guard against hanging forever, never reached when all is well


@spaces.register_space("test_rendezvous")
def rendezvous(trial, context):
    """test_tiny, except that every trial waits until $SEARCH_TEST_RENDEZVOUS worker processes
    have each started a trial: a test of many workers waits on that event, not on how fast
    processes happen to start on a loaded machine."""
    trial.set_user_attr("pid", os.getpid())
    expected = int(os.environ.get(RENDEZVOUS, "0"))
    deadline = time.monotonic() + RENDEZVOUS_SECONDS
    while time.monotonic() < deadline:
        started = {t.user_attrs.get("pid") for t in trial.study.get_trials(deepcopy=False)}
        if len(started - {None}) >= expected:
            break
        time.sleep(0.2)
    return tiny(trial, context)


STALL_AFTER_STEPS = "SEARCH_TEST_STALL_AFTER_STEPS"  # a training step to stop before, forever
STALL_MARKER = "SEARCH_TEST_STALL_MARKER"  # the file that says it has stopped there


def stall_after_steps(limit: int, marker: Path) -> None:
    """In a process started with $SEARCH_TEST_STALL_AFTER_STEPS: the training forward of an
    mlp (an nn.Sequential) after that many steps touches $SEARCH_TEST_STALL_MARKER and waits
    to be killed. A test kills a trial mid-epoch on that event, not at a moment that a loaded
    machine makes a guess. A global hook, so that no test-only model joins the registry."""
    steps = []

    def stall(module, inputs):
        if not (module.training and type(module) is torch.nn.Sequential):
            return
        steps.append(1)
        if len(steps) > limit:
            marker.touch()
            time.sleep(RENDEZVOUS_SECONDS)  # a signal ends it; a guard against hanging forever
            raise RuntimeError("stalled and never killed")

    torch.nn.modules.module.register_module_forward_pre_hook(stall)


if os.environ.get(STALL_AFTER_STEPS):
    stall_after_steps(int(os.environ[STALL_AFTER_STEPS]), Path(os.environ[STALL_MARKER]))


@spaces.register_space("test_resumable")
def resumable(trial, context):
    """test_tiny with state for a resumed trial to get right: momentum, dropout and crops
    (both random generators), lookahead's average."""
    return tiny_mlp(
        trial, context,
        model_args={"width": 16, "depth": 1, "dropout": 0.1},
        lr=trial.suggest_float("sgd_lr", 1e-3, 0.1, log=True), optimizer_args={"momentum": 0.9},
        augment={"flip": {}, "crop": {"padding": 2}}, averaging="lookahead",
    )  # fmt: skip


@spaces.register_space("test_schedules")
def schedules(trial, context):
    """test_tiny under the shared schedule choices (every kind, with its lengths) and, after
    Adam, the shared second phase: the configs whose lengths a retrain at other epochs must
    stretch (tests/fixtures/legacy was made with it)."""
    from spaces.common import suggest_optimizer, suggest_schedule, suggest_second_phase

    optimizer = suggest_optimizer(trial)
    return tiny_mlp(
        trial, context, **optimizer, **suggest_schedule(trial, context.epochs),
        second_phase=suggest_second_phase(trial, optimizer["optimizer"]),
    )  # fmt: skip


@spaces.register_space("test_deleted_from_outside")
def deleted_from_outside(trial, context):
    """test_tiny, except that an operator deletes the study as trial 1 starts (optuna
    delete-study while workers run). In a study of search.run's only."""
    if trial.number == 1 and trial.study.user_attrs.get("space") == "test_deleted_from_outside":
        optuna.delete_study(study_name=trial.study.study_name, storage=trial.study._storage)
    return tiny(trial, context)


@spaces.register_space("test_failed_from_outside")
def failed_from_outside(trial, context):
    """test_tiny, except that trial 0 is marked FAIL by someone else as it starts (as the
    proxy's stale watch, an operator or a clock hiccup can): a false verdict on a live trial. In
    a study of search.run's only (tests that list every space's configs ask it too)."""
    if trial.number == 0 and trial.study.user_attrs.get("space") == "test_failed_from_outside":
        storage = trial.study._storage
        storage.set_trial_user_attr(trial._trial_id, "fail_reason", "an operator failed it")
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return tiny(trial, context)


@spaces.register_space("test_lcbench")
def lcbench_configs(trial, context):
    """LCBench's hyperparameters, suggested as the replay's lcbench task suggests them (a tiny
    network besides): a stand-in trainer (tests/test_replay.py) trains none, reading the
    configuration's surrogate curve instead, so that search.run's decisions can be compared
    with the replay's."""
    from search.bench.replay import lcbench

    LCBENCH_CHOSEN.append(lcbench.suggest(trial))
    return tiny_mlp(trial, context)


LCBENCH_CHOSEN: list[dict] = []  # test_lcbench's configurations, in the order it chose them
