"""The trainer: TrialConfig + data -> trained model, evaluated after every epoch.

The training step keeps the data on the device as uint8, normalises and augments whole batches
there, and reads nothing back to the host until the epoch ends (one sync per epoch).
"""

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

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
    legacy,
    optim,
    parameters,
    tta,
)
from search.training.config import TrialConfig
from search.training.data import LabeledImages
from search.training.device import synchronize
from search.training.preprocess import MEMORY_FORMAT, Preprocess


class TrainingDiverged(Exception):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class EpochResult:
    """One epoch: its training, and the evaluation after it on the run's evaluation split,
    under that split's name: validation in a search, test in a retrain (`eval_is_test`). The
    other split's fields are None, so that neither is ever read for the other."""

    epoch: int  # 1-based
    train_loss: float
    train_seconds: float
    lr: float  # the learning rate of the network's main parameter group as the epoch ended
    val_accuracy: float | None = None
    val_loss: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None

    @classmethod
    def evaluated(cls, on_test: bool, accuracy: float, loss: float, **fields) -> "EpochResult":
        if on_test:
            return cls(test_accuracy=accuracy, test_loss=loss, **fields)
        return cls(val_accuracy=accuracy, val_loss=loss, **fields)


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


Targets = Callable[[torch.Tensor], torch.Tensor]  # a batch's labels -> what the loss compares


def make_targets(
    augmentations: dict, label_smoothing: float, num_classes: int, on_device: torch.device
) -> Targets:
    """Decided once a phase: the labels themselves where nothing mixes them and nothing smooths
    them (cross-entropy on class indices, 6 kernels a step fewer than on one-hot rows), else
    rows of the smoothed one-hot table, y (1 - s) + s / classes, which is what cross-entropy's
    own label_smoothing does to probability targets (so mixup and cutmix mix smoothed rows, as
    mixing before smoothing would: both are linear), 2 kernels fewer than smoothing every
    step."""
    if not augment.mixes(augmentations) and not label_smoothing:
        return lambda labels: labels
    eye = torch.eye(num_classes, device=on_device)
    table = eye * (1 - label_smoothing) + label_smoothing / num_classes
    return lambda labels: table[labels]


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
    mode: str,
) -> tuple[nn.Module, float]:
    """torch.compile(model), compiled before the clock of the first epoch starts: one training
    forward and backward (`first_step` returns the loss) and one evaluation, after which the
    model's parameters, buffers (BN statistics) and gradients are as they were. Returns the
    compiled model and the seconds that took, the one-off cost reported apart. `mode`:
    torch.compile's (search.training.COMPILE_MODES)."""
    compiled = torch.compile(model, mode=mode)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    synchronize(on_device)
    started = time.perf_counter()
    model.train()
    torch.compiler.cudagraph_mark_step_begin()
    first_step(compiled).backward()
    first_evaluation(compiled)
    synchronize(on_device)
    seconds = time.perf_counter() - started
    model.load_state_dict(before)
    model.zero_grad(set_to_none=True)
    return compiled, seconds


FIT_IMAGES = 5000  # enough to estimate a whitening stem's 2x2 patch covariance


@dataclasses.dataclass(eq=False)
class TrainingState:
    """Everything the training loop carries from one epoch to the next, and what it reads:
    `advance` moves it on by one epoch (as torchvision's reference script splits
    train_one_epoch from evaluate). `state_dict()` is what a run needs to continue after its
    last finished epoch: model, optimizer, schedule, averaging, random generators, history
    (the freezing follows from the epoch)."""

    config: TrialConfig
    train_set: LabeledImages
    eval_set: LabeledImages
    eval_is_test: bool  # reduce-on-plateau then watches the training loss: nothing is tuned on test
    preprocess: Preprocess
    normalization: dict[str, list[float]]
    model: nn.Module
    network: nn.Module  # what trains and evaluates: the model, or torch.compile's of it
    freezer: parameters.Freezer
    averager: averaging.Averager
    generator: torch.Generator
    batch_info: augment.BatchInfo
    views_of: tta.ViewMaker
    criterion: nn.Module
    num_classes: int
    clip_gradients: Callable[[], None]
    batch_size: int
    steps_per_epoch: int
    optimizer: torch.optim.Optimizer | None = None  # the current phase's
    schedule: optim.Schedule | None = None
    augmentation: augment.Augmentation | None = None
    targets_of: Targets | None = None  # the current phase's (make_targets)
    history: list[EpochResult] = dataclasses.field(default_factory=list)
    steps_taken: int = 0
    compile_seconds: float = 0.0  # torch.compile's one-off cost, not in any epoch's seconds

    @property
    def epoch(self) -> int:
        """The last finished epoch (0 before the first)."""
        return len(self.history)

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.epochs

    def start_phase(self, phase: config.Phase) -> None:
        self.optimizer, self.schedule = start_phase(
            self.model, phase, self.steps_per_epoch, self.config.param_groups
        )
        self.augmentation = augment.build(phase.augment)
        self.targets_of = self.targets_for(phase)

    def change_course(self, phase: config.Phase) -> None:
        """A change part-way through a phase (config.Change): the phase's optimizer, schedule
        and augmentation built anew with its new values, the schedule at the step it had
        reached, and what the optimizer keeps per parameter (momentum, moments) kept. A run
        resumed after the change builds them the same way (load_state_dict)."""
        kept = self.optimizer.state_dict()["state"]
        plateau = self.schedule.state_dict()
        self.start_phase(phase)
        self.schedule.fast_forward(self.steps_in_phase(phase))
        self.optimizer.load_state_dict(
            {"state": kept, "param_groups": self.optimizer.state_dict()["param_groups"]}
        )
        self.schedule.load_state_dict(plateau)

    def steps_in_phase(self, phase: config.Phase) -> int:
        return self.steps_taken - (phase.first_epoch - 1) * self.steps_per_epoch

    def targets_for(self, phase: config.Phase) -> Targets:
        return make_targets(
            phase.augment, self.config.label_smoothing, self.num_classes,
            self.train_set.images.device,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and values (torch.load(weights_only=True) reads them back)."""
        rng = {"cpu": torch.get_rng_state()}
        if self.generator.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.generator.device)
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "steps_taken": self.steps_taken,
            "history": [dataclasses.asdict(result) for result in self.history],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "averaging": self.averager.state_dict(),
            "generator": self.generator.get_state(),
            "rng": rng,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue after saved["epoch"], as if the run that saved it had gone on: a run of
        this config, or of one that agrees with it up to there (config.as_of)."""
        epoch = saved["epoch"]
        saved_config = config.from_dict(saved["config"], source="a saved training state")
        if config.as_of(saved_config, epoch) != config.as_of(self.config, epoch):
            raise ValueError("the saved state belongs to another config")
        phase = config.phase_at(self.config, epoch)
        self.start_phase(phase)
        self.steps_taken = saved["steps_taken"]
        self.schedule.fast_forward(self.steps_in_phase(phase))
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])  # the rates as they were, too
        self.schedule.load_state_dict(saved["schedule"])
        self.averager.load_state_dict(saved["averaging"])
        self.generator.set_state(saved["generator"])
        torch.set_rng_state(saved["rng"]["cpu"])
        if "cuda" in saved["rng"]:
            torch.cuda.set_rng_state(saved["rng"]["cuda"], self.generator.device)
        self.history = [
            EpochResult(**result) for result in legacy.upgraded_history(saved["history"])
        ]

    def result(self) -> TrainResult:
        return TrainResult(
            model=self.model,
            history=self.history,
            normalization=self.normalization,
            preprocess=self.preprocess,
            param_count=count_parameters(self.model),
            images_per_epoch=self.steps_per_epoch * self.batch_size,
            stopped_early=not self.done,
            compile_seconds=self.compile_seconds,
        )


def build_model(
    trial_config: TrialConfig,
    num_classes: int,
    input_shape: tuple[int, int, int],
    on_device: torch.device,
    fit_images: Callable[[], torch.Tensor],
) -> nn.Module:
    """The config's network on the device; a whitening stem fitted to the data unless it comes
    fitted from the checkpoint it fine-tunes."""
    if trial_config.init_from:
        model = checkpoint.pretrained(
            trial_config.init_from, trial_config, num_classes, input_shape
        )
    else:
        model = models.build(
            trial_config.model, num_classes=num_classes, image_shape=input_shape,
            init=trial_config.init, **trial_config.model_args,
        )  # fmt: skip
    model = model.to(on_device, memory_format=MEMORY_FORMAT)
    if not trial_config.init_from:
        models.fit_to_data(model, fit_images)
    return model


def start_training(
    trial_config: TrialConfig,
    train_set: LabeledImages,
    eval_set: LabeledImages,
    num_classes: int,
    on_device: torch.device,
    eval_is_test: bool = False,
    compile_model: str = "",
) -> TrainingState:
    """The state before the first epoch: seeded, the model built (and compiled, in
    torch.compile's mode `compile_model`; "": not compiled)."""
    torch.manual_seed(trial_config.seed)
    generator = torch.Generator(device=on_device).manual_seed(trial_config.seed)
    torch.backends.cudnn.benchmark = on_device.type == "cuda"
    train_set, eval_set = train_set.to(on_device), eval_set.to(on_device)
    statistics = train_set.channel_statistics
    preprocess = Preprocess.build(statistics, on_device, trial_config.image_size)
    input_shape = trial_config.input_shape(train_set.images.shape[1:])
    model = build_model(
        trial_config, num_classes, input_shape, on_device,
        lambda: preprocess.normalize(train_set.images[:FIT_IMAGES]),
    )  # fmt: skip
    batch_size = min(trial_config.batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size  # drop the ragged last batch: BN needs >1 image
    state = TrainingState(
        config=trial_config,
        train_set=train_set,
        eval_set=eval_set,
        eval_is_test=eval_is_test,
        preprocess=preprocess,
        normalization=statistics,
        model=model,
        network=model,
        freezer=parameters.Freezer(model, trial_config.freeze),
        averager=averaging.AVERAGING[trial_config.averaging](
            model, steps_per_epoch * trial_config.epochs, **trial_config.averaging_args
        ),
        generator=generator,
        batch_info=augment.BatchInfo.draw(len(train_set), generator),
        views_of=tta.build(trial_config.tta, trial_config.tta_args),
        criterion=nn.CrossEntropyLoss(),  # the smoothing is in the targets (make_targets)
        num_classes=num_classes,
        clip_gradients=make_gradient_clipper(model, trial_config.grad_clip_norm),
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
    )
    if compile_model:
        compile_state(state, compile_model)
    return state


def compile_state(state: TrainingState, mode: str) -> None:
    """Train and evaluate through torch.compile, compiled on a batch like every training
    step's, augmented as the first phase augments (an unaugmented one may differ in layout or
    dtype, and the first real step would compile again). Its random numbers come from a copy
    of the run's generator and a fork of torch's, so the run draws the same numbers as it
    would without --compile."""
    index = torch.arange(state.batch_size, device=state.train_set.images.device)
    phase = config.phase_at(state.config, 1)
    images = state.preprocess.normalize(state.train_set.images[index])
    targets = state.targets_for(phase)(state.train_set.labels[index])
    generator = torch.Generator(device=state.generator.device)
    generator.set_state(state.generator.get_state())
    augmentation = augment.build(phase.augment)
    on_cuda = [state.generator.device] if state.generator.device.type == "cuda" else []

    def first_step(compiled: nn.Module) -> torch.Tensor:
        with torch.random.fork_rng(devices=on_cuda):
            inputs, augmented_targets = augmentation(
                images, targets, generator, state.batch_info.of(index, 1)
            )
            with state.preprocess.autocast:
                return state.criterion(compiled(inputs), augmented_targets)

    state.network, state.compile_seconds = compile_now(
        state.model,
        first_step,
        lambda network: evaluate(state, network),
        state.train_set.images.device,
        mode,
    )


def train_step(state: TrainingState, index: torch.Tensor, epoch: int) -> torch.Tensor:
    """One optimizer step on the training images at `index` in `epoch`: augmentation,
    forward, backward, update, schedule and averaging. Returns the loss, not read back."""
    train_set = state.train_set
    images = state.preprocess.normalize(train_set.images[index])
    targets = state.targets_of(train_set.labels[index])
    inputs, targets = state.augmentation(
        images, targets, state.generator, state.batch_info.of(index, epoch)
    )
    if state.network is not state.model:  # compiled: CUDA graphs (--compile reduce-overhead)
        torch.compiler.cudagraph_mark_step_begin()  # may reuse the last step's memory
    with state.preprocess.autocast:
        loss = state.criterion(state.network(inputs), targets)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.clip_gradients()
    state.optimizer.step()
    state.schedule.per_batch.step()
    state.steps_taken += 1
    state.averager.step(state.steps_taken)
    return loss.detach()


def epoch_order(state: TrainingState) -> torch.Tensor:
    """The training images' order for one epoch: a fresh permutation from the run's generator."""
    images = state.train_set.images
    return torch.randperm(len(images), device=images.device, generator=state.generator)


def epoch_batches(state: TrainingState) -> list[torch.Tensor]:
    """One epoch's batches of image indices, in a fresh order (the ragged rest is dropped)."""
    order = epoch_order(state)
    size = state.batch_size
    return [order[i * size : (i + 1) * size] for i in range(state.steps_per_epoch)]


def batches(state: TrainingState, count: int) -> list[torch.Tensor]:
    """`count` training batches' image indices, epoch after epoch: for running steps outside
    an epoch (counting, profiling)."""
    found: list[torch.Tensor] = []
    while len(found) < count:
        found += epoch_batches(state)
    return found[:count]


def start_stepping(state: TrainingState) -> None:
    """Ready for train_step outside train_one_epoch: the first phase, in training mode."""
    state.start_phase(config.phase_at(state.config, 1))
    state.model.train()
    state.freezer.start_epoch(1)


def train_one_epoch(state: TrainingState, epoch: int) -> tuple[float, float]:
    """One pass over the training set in a fresh order: (mean training loss, seconds)."""
    state.model.train()
    state.freezer.start_epoch(epoch)
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=state.train_set.images.device)
    for index in epoch_batches(state):
        loss_sum += train_step(state, index, epoch)
    if epoch == state.config.epochs:
        state.averager.finish()
    train_loss = loss_sum.item() / state.steps_per_epoch  # the epoch's one host sync
    return train_loss, time.perf_counter() - started


def evaluate(state: TrainingState, network: nn.Module | None = None) -> tuple[float, float]:
    """(accuracy, loss) on the state's eval set, with its test-time augmentation."""
    return evaluation.accuracy_and_loss(
        network or state.network, state.eval_set, state.preprocess, state.views_of
    )


def advance(state: TrainingState) -> EpochResult:
    """Train and evaluate the next epoch (each phase starting with a fresh optimizer, schedule
    and augmentation); its result is appended to the state's history."""
    epoch = state.epoch + 1
    phase = config.phase_at(state.config, epoch)
    if phase.first_epoch == epoch:
        state.start_phase(phase)
    elif config.changes_at(state.config, epoch):
        state.change_course(phase)
    train_loss, train_seconds = train_one_epoch(state, epoch)
    if not math.isfinite(train_loss):
        raise TrainingDiverged(f"the training loss became {train_loss} in epoch {epoch}")
    accuracy, loss = evaluate(state)
    state.schedule.step_epoch(train_loss if state.eval_is_test else loss)
    lr = state.optimizer.param_groups[-1]["lr"]  # the last group: the parameters no rule took
    state.history.append(
        EpochResult.evaluated(
            state.eval_is_test,
            accuracy,
            loss,
            epoch=epoch,
            train_loss=train_loss,
            train_seconds=train_seconds,
            lr=lr,
        )  # fmt: skip
    )
    return state.history[-1]


def train(
    trial_config: TrialConfig,
    train_set: LabeledImages,
    eval_set: LabeledImages,
    num_classes: int,
    on_device: torch.device,
    on_epoch: Callable[[EpochResult], bool] | None = None,
    eval_is_test: bool = False,
    compile_model: str = "",
    resume_from: dict[str, Any] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[TrainingState], None] | None = None,
) -> TrainResult:
    """Train for trial_config.epochs, evaluating on eval_set after every epoch. on_epoch gets
    each epoch's result and returns True to stop early (a pruned trial). Reduce-on-plateau
    watches the loss on eval_set, or the training loss when eval_set is the test set
    (`eval_is_test`: nothing may be tuned on it). `compile_model`: train and evaluate through
    torch.compile in that mode (search.training.COMPILE_MODES; "": not compiled), its compile
    time measured apart (TrainResult.compile_seconds).
    `on_checkpoint` gets TrainingState.state_dict() after every epoch, before on_epoch;
    `resume_from` (one of those) continues after its epoch, ending as the run that saved it
    would have. `on_start` gets the state before the first epoch (to measure the network as
    built)."""
    state = start_training(
        trial_config, train_set, eval_set, num_classes, on_device, eval_is_test, compile_model
    )
    if resume_from is not None:
        state.load_state_dict(resume_from)
    if on_start is not None:
        on_start(state)
    while not state.done:
        result = advance(state)
        if on_checkpoint is not None:
            on_checkpoint(state.state_dict())
        if on_epoch is not None and on_epoch(result):
            break
    return state.result()
