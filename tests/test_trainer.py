import dataclasses
import functools
import io
import itertools

import pytest
import torch

import models
from search.training import augment as augment_module
from search.training import config, trainer
from search.training.config import SecondPhase, TrialConfig
from search.training.trainer import TrainingDiverged, make_targets, train

CPU = torch.device("cpu")

SMALL_RESNET = TrialConfig(
    model="resnet",
    model_args={"depth": 10, "width": 16},
    optimizer="sgd",
    optimizer_args={"momentum": 0.9, "nesterov": True},
    lr=0.2,
    weight_decay=5e-4,
    schedule="onecycle",
    batch_size=256,
    epochs=3,
    augment={"flip": {}, "crop": {"padding": 4}},
    label_smoothing=0.1,
    seed=0,
    dataset="sample",
)

MLP = TrialConfig(
    model="mlp",
    model_args={"width": 128, "depth": 2},
    optimizer="adamw",
    lr=1e-3,
    weight_decay=0.05,
    schedule="cosine",
    warmup_fraction=0.1,
    batch_size=128,
    epochs=2,
    augment={"flip": {}, "crop": {"padding": 2}, "cutout": {"size": 8}},
    grad_clip_norm=1.0,
    dataset="sample",
)


def test_the_trainer_learns_on_the_sample(sample):
    """Chance is 10%; a small ResNet gets far above it on 4,500 images in 3 epochs."""
    result = train(SMALL_RESNET, sample.train, sample.val, sample.num_classes, CPU)
    accuracies = [epoch.val_accuracy for epoch in result.history]
    assert len(accuracies) == 3 and not result.stopped_early
    assert accuracies[-1] > 0.3
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.param_count > 0 and result.images_per_second > 0
    assert result.images_per_epoch == 4352  # 17 full batches of 256; the ragged one is dropped


def test_training_is_deterministic_on_the_cpu_given_the_seed(sample):
    first = train(MLP, sample.train, sample.val, sample.num_classes, CPU)
    second = train(MLP, sample.train, sample.val, sample.num_classes, CPU)
    other_seed = train(MLP.replace(seed=1), sample.train, sample.val, sample.num_classes, CPU)
    losses = [[e.train_loss for e in r.history] for r in (first, second, other_seed)]
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]
    assert [e.val_accuracy for e in first.history] == [e.val_accuracy for e in second.history]


def test_the_callback_sees_every_epoch_and_can_stop_training(sample):
    seen = []

    def stop_after_two(epoch):
        seen.append(epoch.epoch)
        return epoch.epoch == 2

    result = train(MLP.replace(epochs=5), sample.train, sample.val, 10, CPU, stop_after_two)
    assert seen == [1, 2]
    assert result.stopped_early and len(result.history) == 2


def test_a_diverging_loss_raises_instead_of_training_on(sample):
    hopeless = MLP.replace(optimizer="sgd", optimizer_args={}, lr=1e12, grad_clip_norm=0.0)
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        train(hopeless, sample.train, sample.val, sample.num_classes, CPU)


def test_a_second_phase_switches_optimizer_part_way(sample):
    """An MLP has no batch norm, so with the second phase's lr at 0 the network must stay
    exactly as the first phase left it: epoch 2 evaluates like epoch 1."""
    switched = MLP.replace(second_phase={"start_fraction": 0.5, "optimizer": "sgd", "lr": 0.0})
    frozen = train(switched, sample.train, sample.val, 10, CPU).history
    assert frozen[1].val_loss == frozen[0].val_loss
    moving = train(MLP, sample.train, sample.val, 10, CPU).history
    assert moving[1].val_loss != moving[0].val_loss


def test_inputs_are_resized_to_image_size_for_the_network(sample):
    tiny = sample.train.subset(torch.arange(64))
    resized = MLP.replace(image_size=20, epochs=1, batch_size=32)
    result = train(resized, tiny, tiny, 10, CPU)
    first_linear = next(m for m in result.model.modules() if isinstance(m, torch.nn.Linear))
    assert first_linear.in_features == 3 * 20 * 20


def test_a_whitening_stem_is_fitted_to_the_training_images(sample):
    """After training, the stem's first 12 filters whiten the 2x2 patches of the images it was
    fitted to, normalised as the trainer normalises them: their outputs' second moments are
    diagonal, lambda / (lambda + eps) for the patches' eigenvalues lambda in falling order
    (1 but for directions with almost no variance; airbench's eps = 5e-4). An unfitted stem's
    are far from that, which the last line checks."""
    tiny = sample.train.subset(torch.arange(256))
    fast = TrialConfig(model="fastnet", model_args={"width": 8, "widen": 1}, epochs=1,
                       batch_size=64, dataset="sample")  # fmt: skip
    result = train(fast, tiny, tiny, 10, CPU)
    stem = result.model[0]
    normalized = result.preprocess.normalize(tiny.images)

    def whitened_moments(weight):
        outputs = torch.nn.functional.conv2d(normalized, weight[:12])
        flat = outputs.permute(0, 2, 3, 1).reshape(-1, 12)
        return flat.T @ flat / len(flat)

    patches = normalized.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12)
    eigenvalues = torch.linalg.eigvalsh(patches.T @ patches / len(patches)).flip(0)
    expected = torch.diag(eigenvalues / (eigenvalues + 5e-4))
    assert not stem.weight.requires_grad
    assert torch.allclose(whitened_moments(stem.weight), expected, atol=2e-3)
    unfitted = models.build("fastnet", num_classes=10, image_shape=(3, 32, 32), width=8)[0]
    assert not torch.allclose(whitened_moments(unfitted.weight), expected, atol=0.3)


@pytest.mark.parametrize("mixing", ["mixup", "cutmix"])
def test_mixing_trains_on_soft_targets(sample, mixing):
    mixed = MLP.replace(augment={mixing: {}}, epochs=1, label_smoothing=0.1)
    result = train(mixed, sample.train, sample.val, 10, CPU)
    assert result.final.val_accuracy > 0.15 and result.final.train_loss > 0


@pytest.mark.parametrize("augment", [{"flip": {}}, {"mixup": {}}, {"cutmix": {}}])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_the_targets_give_cross_entropys_loss_on_smoothed_one_hot_rows(augment, label_smoothing):
    """Class indices where nothing mixes or smooths, else rows of a smoothed one-hot table:
    the loss and its gradient are cross-entropy's own with label_smoothing on one-hot rows,
    mixed as the phase mixes them (a mix of smoothed rows is the smoothing of the mix)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(16, 3, 8, 8, generator=generator)
    labels = torch.randint(0, 10, (16,), generator=generator)
    logits = torch.randn(16, 10, generator=generator, dtype=torch.float64)
    to_targets = make_targets(augment, label_smoothing, 10, CPU)
    if not augment.keys() & {"mixup", "cutmix"} and not label_smoothing:
        assert to_targets(labels) is labels
    mix = augment_module.build(augment)

    def mixed(targets: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(1)  # Beta draws from torch's generator
        return mix(images, targets, torch.Generator().manual_seed(1), None)[1]

    ours, one_hot = mixed(to_targets(labels)), mixed(torch.eye(10)[labels])
    losses, gradients = [], []
    for targets, smoothing in ((ours, 0.0), (one_hot, label_smoothing)):
        leaf = logits.clone().requires_grad_()
        loss = torch.nn.functional.cross_entropy(leaf, targets, label_smoothing=smoothing)
        loss.backward()
        losses.append(loss.detach())
        gradients.append(leaf.grad)
    torch.testing.assert_close(*losses, rtol=1e-6, atol=0)
    torch.testing.assert_close(*gradients, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiling_trains_the_same_and_reports_its_cost_apart(sample, mode, monkeypatch):
    """torch.compile is compiled before the first epoch's clock starts, from a step whose
    effect on the weights, BN statistics and the data order is undone: the losses match.
    reduce-overhead's CUDA graphs are skipped on the CPU; its steps still mark where each
    begins, and train as the default mode's do. Dynamo and AOTAutograd trace and run the
    graphs (backend aot_eager); Inductor's C++ code generation, 15 s of a 2-core machine for
    this MLP and torch's own numerics, is left to GPU.md's trainer section, which compiles
    for real."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    plain = train(MLP, sample.train, sample.val, sample.num_classes, CPU)
    compiled = train(MLP, sample.train, sample.val, sample.num_classes, CPU, compile_model=mode)
    assert plain.compile_seconds == 0 and compiled.compile_seconds > 0
    assert [e.train_loss for e in compiled.history] == pytest.approx(
        [e.train_loss for e in plain.history], rel=1e-4
    )
    assert list(compiled.model.state_dict()) == list(plain.model.state_dict())  # no _orig_mod


def test_test_time_augmentation_is_used_in_evaluation(sample):
    """Mirror views change a left-right-sensitive MLP's validation loss; none changes nothing."""
    plain = train(MLP.replace(epochs=1), sample.train, sample.val, sample.num_classes, CPU)
    mirrored = train(
        MLP.replace(epochs=1, tta="mirror"), sample.train, sample.val, sample.num_classes, CPU
    )
    assert plain.final.train_loss == mirrored.final.train_loss  # training is untouched
    assert plain.final.val_loss != mirrored.final.val_loss


# Every piece of state a resumed run must carry: dropout (the global generator), mixup and
# crops (the trainer's generator), lookahead's average, momentum, a warm-up, a second phase
# with its own optimizer, frozen parts, and reduce-on-plateau's memory of the best loss.
EVERY_STATE = config.validate(
    TrialConfig(
        model="mlp",
        model_args={"width": 32, "depth": 2, "dropout": 0.2},
        optimizer="sgd",
        optimizer_args={"momentum": 0.9},
        lr=0.05,
        schedule="plateau",
        warmup_fraction=0.2,
        batch_size=256,
        epochs=4,
        augment={"flip": {}, "crop": {"padding": 2}, "mixup": {"alpha": 0.4}},
        averaging="lookahead",
        second_phase=SecondPhase(start_fraction=0.5, optimizer="adamw", lr=1e-3),
        freeze={"stem": 1},
        dataset="sample",
    )
)


def test_a_run_resumed_from_any_epoch_ends_exactly_as_the_uninterrupted_one(sample):
    """Resumed after epoch 1 (inside the first phase) and after epoch 2 (where the second
    phase starts), from states written and read as checkpoints are."""
    saved = []

    def keep(state):
        written = io.BytesIO()
        torch.save(state, written)
        saved.append(written.getvalue())

    arguments = (sample.train, sample.val, sample.num_classes, CPU)
    whole = train(EVERY_STATE, *arguments, on_checkpoint=keep)
    assert [s["epoch"] for s in map(read_state, saved)] == [1, 2, 3, 4]
    for epoch in (1, 2):
        resumed = train(EVERY_STATE, *arguments, resume_from=read_state(saved[epoch - 1]))
        assert resumed.history == whole.history[:epoch] + resumed.history[epoch:]
        assert [e.val_accuracy for e in resumed.history] == [e.val_accuracy for e in whole.history]
        assert [e.train_loss for e in resumed.history] == [e.train_loss for e in whole.history]
        for name, value in whole.model.state_dict().items():
            assert torch.equal(value, resumed.model.state_dict()[name]), name


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "plateau"])
def test_a_change_part_way_replayed_from_scratch_runs_as_the_run_continued_with_it(
    sample, schedule
):
    """What population-based training does (search/tuning/strategies/pbt.py): a run saved after epoch 1
    is continued under a config that changes the rate, the decay and the augmentation from
    epoch 2 on. Trained from scratch, that config (what search.train replays) gives the same
    curve and weights, whether the schedule's rate is a closed form (one-cycle), chained from
    the last step's (cosine) or cut on plateaus; and a resume after the change does too."""
    base = dataclasses.replace(EVERY_STATE, schedule=schedule, schedule_args={})
    changed = base.replace(changes=[{"start_fraction": 0.25, "lr": 0.02, "weight_decay": 1e-3,
                                     "augment": {"flip": {}, "cutout": {"size": 8}}}])  # fmt: skip
    arguments = (sample.train, sample.val, sample.num_classes, CPU)
    parent_states, child_states = [], []  # as checkpoints are written and read

    def keeper(states):
        return lambda state: states.append(written_and_read(state))

    parent = train(base, *arguments, on_checkpoint=keeper(parent_states))
    replayed = train(changed, *arguments, on_checkpoint=keeper(child_states))
    continued = train(changed, *arguments, resume_from=parent_states[0])
    resumed = train(changed, *arguments, resume_from=child_states[1])  # after the change
    for run in (continued, resumed):
        assert [e.val_accuracy for e in run.history] == [e.val_accuracy for e in replayed.history]
        assert [e.train_loss for e in run.history] == [e.train_loss for e in replayed.history]
        for name, value in replayed.model.state_dict().items():
            assert torch.equal(value, run.model.state_dict()[name]), name
    assert replayed.history[0].val_accuracy == parent.history[0].val_accuracy  # the same
    assert replayed.history[0].lr == parent.history[0].lr  # first epoch
    assert replayed.history[1].train_loss != parent.history[1].train_loss  # then the change
    with pytest.raises(ValueError, match="another config"):  # not before the state's epoch
        train(changed, *arguments, resume_from=parent_states[1])


def test_a_state_of_another_config_is_refused(sample):
    saved = []
    train(MLP.replace(epochs=1), sample.train, sample.val, sample.num_classes, CPU,
          on_checkpoint=saved.append)  # fmt: skip
    with pytest.raises(ValueError, match="another config"):
        train(MLP, sample.train, sample.val, sample.num_classes, CPU, resume_from=saved[0])


def written_and_read(state: dict) -> dict:
    written = io.BytesIO()
    torch.save(state, written)
    return read_state(written.getvalue())


def read_state(written: bytes) -> dict:
    return torch.load(io.BytesIO(written), weights_only=True)


def test_compiled_training_keeps_to_a_few_graphs(sample, monkeypatch):
    """Under --compile, Dynamo compiles the training and the evaluation graphs once each, and
    once more each after the whitening bias freezes; crops, flips, test-time views and a
    ragged last evaluation batch add none. Counted with Dynamo's own counters, with its eager
    backend (the graphs and guards are Dynamo's whatever backend compiles them): a graph per
    layout or per view would pass the cache limit, after which torch silently runs eagerly."""
    import functools

    import optuna
    import torch._dynamo
    from torch._dynamo.utils import counters

    import spaces

    context = spaces.SpaceContext("sample", epochs=2, seed=0)
    params = spaces.warm_starts("fast")[0].params
    config = spaces.get("fast")(optuna.trial.FixedTrial(params), context)
    config = config.replace(model_args={**config.model_args, "width": 4}, batch_size=128,
                            freeze={"stem": 1})  # fmt: skip
    assert config.tta == "mirror_translate" and set(config.augment) >= {"crop", "alternating_flip"}
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    counters.clear()
    evaluation_images = sample.train.subset(torch.arange(512, 1542))  # batches of 1024 and 6
    train(config, sample.train.subset(torch.arange(512)), evaluation_images, 10, CPU,
          compile_model="default")  # fmt: skip
    graphs = counters["stats"]["unique_graphs"]
    assert 4 <= graphs <= 6 < torch._dynamo.config.recompile_limit


def lr_curve(trial_config, images) -> list[float]:
    """The learning rate at every step of the config's run, phase after phase, as the
    trainer builds each phase's optimizer and schedule for the tiny network."""
    state = trainer.start_training(trial_config, images, images, 10, CPU)
    curve = []
    for phase in config.phases(trial_config):
        optimizer, schedule = trainer.start_phase(
            state.model, phase, state.steps_per_epoch, trial_config.param_groups
        )
        for _ in range(phase.epochs * state.steps_per_epoch):
            curve.append(optimizer.param_groups[-1]["lr"])
            optimizer.step()
            schedule.per_batch.step()
    return curve


STEPS_PER_EPOCH = 4  # 64 images at batch 16


def on_the_grid(chosen: TrialConfig) -> TrialConfig:
    """The sampled config with the lengths that whole steps and epochs round (where the
    second phase begins, how many steps the warm-up takes) moved onto the 4-epoch run's
    whole epochs and steps, so that rounding them is exact at 4 epochs and at 12 alike."""
    epochs, second = chosen.epochs, chosen.second_phase
    first_epochs = epochs
    if second is not None:
        first_epochs = min(max(1, round(second.start_fraction * epochs)), epochs - 1)
        second = dataclasses.replace(second, start_fraction=first_epochs / epochs)
    steps = first_epochs * STEPS_PER_EPOCH
    warmup = round(chosen.warmup_fraction * steps) / steps
    return chosen.replace(batch_size=16, second_phase=second, warmup_fraction=warmup)


def sampled_schedules(kind: str, count: int) -> list[TrialConfig]:
    """Configs of tests.spaces_for_tests' test_schedules for 4 epochs with schedule `kind`,
    half of them Adam then a second phase of SGD, the rest as sampled (seeded)."""
    import optuna

    import spaces
    import tests.spaces_for_tests  # noqa: F401  registers test_schedules

    found = []
    for number in range(count):
        fixed = {
            "schedule": kind,
            **({"optimizer": "adam", "two_phase": True} if number % 2 else {}),
        }
        sampler = optuna.samplers.PartialFixedSampler(
            fixed, optuna.samplers.RandomSampler(seed=number)
        )
        trial = optuna.create_study(sampler=sampler).ask()
        chosen = spaces.get("test_schedules")(trial, spaces.SpaceContext("sample", 4, 0))
        found.append(on_the_grid(config.validate(chosen)))
    return found


@pytest.mark.parametrize(
    "kind", ["constant", "step", "exponential", "polynomial", "cosine", "onecycle", "cyclic"]
)
def test_a_run_at_three_times_the_epochs_runs_the_same_schedule_stretched(kind, sample):
    """A space samples the schedule for the study's 4 epochs; retrained at 12, the learning
    rate at every step of the short run is the long run's at the same fraction of the run
    (its step three times as far). One-cycle is torch's OneCycleLR, which ends its rise one
    step before pct_start of the run: the same to within one step of the short run. Before
    schedule lengths became fractions, step decay and cycles kept their lengths in epochs
    and exponential decay its rate per epoch."""
    images = sample.train.subset(torch.arange(16 * STEPS_PER_EPOCH))
    for short in sampled_schedules(kind, 4):
        short_curve = lr_curve(short, images)
        long_curve = lr_curve(short.replace(epochs=3 * short.epochs), images)
        assert len(long_curve) == 3 * len(short_curve)
        stretched = long_curve[::3]
        if kind == "onecycle":
            one_step = max(abs(a - b) for a, b in itertools.pairwise(short_curve))
            assert stretched == pytest.approx(short_curve, abs=one_step), short
        else:
            assert stretched == pytest.approx(short_curve, rel=1e-9, abs=1e-15), short


def test_plateaus_patience_is_the_same_share_of_a_longer_run(sample):
    (short,) = sampled_schedules("plateau", 1)
    patience = []
    for epochs in (4, 12):
        state = trainer.start_training(short.replace(epochs=epochs), sample.val, sample.val,
                                       10, CPU)  # fmt: skip
        _, schedule = trainer.start_phase(
            state.model, config.phases(state.config)[0], state.steps_per_epoch, {}
        )
        patience.append(schedule.per_epoch.patience)
    assert patience[1] == 3 * patience[0]
