"""The trainer: TrialConfig + data -> trained model, evaluated after every epoch.

The training step keeps the data on the device as uint8, normalises and augments whole batches
there, and reads nothing back to the host until the epoch ends (one sync per epoch).
"""

import dataclasses
import math
import time
from collections.abc import Callable

import torch
from torch import nn

import models
from models.layers import count_parameters
from search.training import (
    augment,
    averaging,
    checkpoint,
    config,
    evaluation,
    optim,
    parameters,
    tta,
)
from search.training.config import TrialConfig
from search.training.data import LabeledImages
from search.training.device import synchronize
from search.training.preprocess import Preprocess, channel_statistics


class TrainingDiverged(Exception):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based
    train_loss: float
    # On the split passed as eval_set: validation in a search, test in a retrain.
    eval_accuracy: float
    eval_loss: float
    train_seconds: float
    lr: float  # the learning rate of the network's main parameter group as the epoch ended


@dataclasses.dataclass
class TrainResult:
    model: nn.Module
    history: list[EpochResult]
    normalization: dict[str, list[float]]  # per-channel mean and std of the training images
    preprocess: Preprocess  # how the model takes uint8 images, for evaluating it afterwards
    param_count: int
    images_per_epoch: int
    stopped_early: bool
    compile_seconds: float = 0.0  # torch.compile's one-off cost, not in any epoch's seconds

    @property
    def final(self) -> EpochResult:
        return self.history[-1]

    @property
    def seconds_per_epoch(self) -> float:
        return sum(r.train_seconds for r in self.history) / len(self.history)

    @property
    def images_per_second(self) -> float:
        return self.images_per_epoch / self.seconds_per_epoch


def make_gradient_clipper(model: nn.Module, max_norm: float) -> Callable[[], None]:
    """Decided once, so the training step has no branch on the config."""
    if not max_norm:
        return lambda: None
    parameters = list(model.parameters())
    return lambda: nn.utils.clip_grad_norm_(parameters, max_norm)


def start_phase(
    model: nn.Module, phase: config.Phase, steps_per_epoch: int, scales: dict
) -> tuple[torch.optim.Optimizer, optim.Schedule]:
    """A fresh optimizer and schedule for one phase, its schedule spanning the phase's steps;
    `scales` is the config's param_groups (parameters.py)."""
    groups = parameters.param_groups(model, phase.lr, phase.weight_decay, scales)
    optimizer = optim.OPTIMIZERS[phase.optimizer](
        groups, lr=phase.lr, weight_decay=phase.weight_decay, **phase.optimizer_args
    )
    steps = steps_per_epoch * phase.epochs
    schedule = optim.build_schedule(
        optimizer, phase.schedule, phase.schedule_args, steps, steps_per_epoch,
        warmup_steps=round(phase.warmup_fraction * steps),
    )  # fmt: skip
    return optimizer, schedule


def compile_now(
    model: nn.Module,
    first_step: Callable[[nn.Module], torch.Tensor],
    first_evaluation: Callable[[nn.Module], object],
    on_device: torch.device,
) -> tuple[nn.Module, float]:
    """torch.compile(model), compiled before the clock of the first epoch starts: one training
    forward and backward (`first_step` returns the loss) and one evaluation, after which the
    model's parameters, buffers (BN statistics) and gradients are as they were. Returns the
    compiled model and the seconds that took, the one-off cost reported apart."""
    compiled = torch.compile(model)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    synchronize(on_device)
    started = time.perf_counter()
    model.train()
    first_step(compiled).backward()
    first_evaluation(compiled)
    synchronize(on_device)
    seconds = time.perf_counter() - started
    model.load_state_dict(before)
    model.zero_grad(set_to_none=True)
    return compiled, seconds


FIT_IMAGES = 5000  # enough to estimate a whitening stem's 2x2 patch covariance


def train(
    trial_config: TrialConfig,
    train_set: LabeledImages,
    eval_set: LabeledImages,
    num_classes: int,
    on_device: torch.device,
    on_epoch: Callable[[EpochResult], bool] | None = None,
    eval_is_test: bool = False,
    compile_model: bool = False,
) -> TrainResult:
    """Train for trial_config.epochs, evaluating on eval_set after every epoch. on_epoch gets
    each epoch's result and returns True to stop early (a pruned trial). Reduce-on-plateau
    watches the loss on eval_set, or the training loss when eval_set is the test set
    (`eval_is_test`: nothing may be tuned on it). `compile_model`: train and evaluate through
    torch.compile, its compile time measured apart (TrainResult.compile_seconds)."""
    torch.manual_seed(trial_config.seed)
    generator = torch.Generator(device=on_device).manual_seed(trial_config.seed)
    on_cuda = on_device.type == "cuda"
    torch.backends.cudnn.benchmark = on_cuda
    train_set, eval_set = train_set.to(on_device), eval_set.to(on_device)
    statistics = channel_statistics(train_set.images)
    preprocess = Preprocess.build(statistics, on_device, trial_config.image_size)
    normalize, autocast = preprocess.normalize, preprocess.autocast
    input_shape = trial_config.input_shape(train_set.images.shape[1:])
    if trial_config.init_from:  # fine-tuning: its layers, whitening included, come fitted
        model = checkpoint.pretrained(
            trial_config.init_from, trial_config, num_classes, input_shape
        )
    else:
        model = models.build(
            trial_config.model, num_classes=num_classes, image_shape=input_shape,
            init=trial_config.init, **trial_config.model_args,
        )  # fmt: skip
    model = model.to(on_device, memory_format=torch.channels_last if on_cuda else None)
    if not trial_config.init_from:
        models.fit_to_data(model, lambda: normalize(train_set.images[:FIT_IMAGES]))
    batch_size = min(trial_config.batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size  # drop the ragged last batch: BN needs >1 image
    phase_starts = {phase.first_epoch: phase for phase in config.phases(trial_config)}
    freezer = parameters.Freezer(model, trial_config.freeze)
    averager = averaging.AVERAGING[trial_config.averaging](
        model, steps_per_epoch * trial_config.epochs, **trial_config.averaging_args
    )
    views_of = tta.build(trial_config.tta, trial_config.tta_args)
    batch_info = augment.BatchInfo.draw(len(train_set), generator)
    # Soft targets throughout, so that mixup and cutmix need no other loss.
    targets_of = torch.eye(num_classes, device=on_device)
    criterion = nn.CrossEntropyLoss(label_smoothing=trial_config.label_smoothing)
    clip_gradients = make_gradient_clipper(model, trial_config.grad_clip_norm)

    def batch_of(index: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = normalize(train_set.images[index]), targets_of[train_set.labels[index]]
        return augmentation(images, targets, generator, batch_info.of(index, epoch))

    def run_evaluation(network: nn.Module) -> tuple[float, float]:
        return evaluation.accuracy_and_loss(network, eval_set, preprocess, views_of)

    network, compile_seconds = model, 0.0
    if compile_model:
        # Unaugmented, so that the generator draws the same numbers as without --compile.
        inputs = normalize(train_set.images[:batch_size])
        targets = targets_of[train_set.labels[:batch_size]]

        def first_step(compiled: nn.Module) -> torch.Tensor:
            with autocast:
                return criterion(compiled(inputs), targets)

        network, compile_seconds = compile_now(model, first_step, run_evaluation, on_device)

    history: list[EpochResult] = []
    steps_taken = 0
    for epoch in range(1, trial_config.epochs + 1):
        if epoch in phase_starts:  # each phase: a fresh optimizer and schedule, its augmentation
            optimizer, schedule = start_phase(
                model, phase_starts[epoch], steps_per_epoch, trial_config.param_groups
            )
            augmentation = augment.build(phase_starts[epoch].augment)
        model.train()
        freezer.start_epoch(epoch)
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=on_device)
        order = torch.randperm(len(train_set), device=on_device, generator=generator)
        for step in range(steps_per_epoch):
            inputs, targets = batch_of(order[step * batch_size : (step + 1) * batch_size], epoch)
            with autocast:
                loss = criterion(network(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients()
            optimizer.step()
            schedule.per_batch.step()
            steps_taken += 1
            averager.step(steps_taken)
            loss_sum += loss.detach()
        if epoch == trial_config.epochs:
            averager.finish()
        train_loss = loss_sum.item() / steps_per_epoch  # the epoch's one host sync
        train_seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"the training loss became {train_loss} in epoch {epoch}")
        eval_accuracy, eval_loss = run_evaluation(network)
        schedule.step_epoch(train_loss if eval_is_test else eval_loss)
        lr = optimizer.param_groups[-1]["lr"]  # the last group: the parameters no rule took
        history.append(EpochResult(epoch, train_loss, eval_accuracy, eval_loss, train_seconds, lr))
        if on_epoch is not None and on_epoch(history[-1]):
            break
    return TrainResult(
        model=model,
        history=history,
        normalization=statistics,
        preprocess=preprocess,
        param_count=count_parameters(model),
        images_per_epoch=steps_per_epoch * batch_size,
        stopped_early=len(history) < trial_config.epochs,
        compile_seconds=compile_seconds,
    )
