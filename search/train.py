"""The trainer (TrialConfig + data -> trained model) and `python -m search.train`, which retrains
an exported config on train+val and measures it on the test set.

The training step keeps the data on the device as uint8, normalises and augments whole batches
there, and reads nothing back to the host until the epoch ends (one sync per epoch).
"""

import dataclasses
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from torch import nn

import models
from models.layers import count_parameters
from search import (
    augment,
    checkpoint,
    cli,
    config,
    data,
    device,
    evaluation,
    optim,
    storage,
    study,
)  # fmt: skip
from search.config import TrialConfig
from search.data import LabeledImages
from search.device import synchronize
from search.errors import UsageError


class TrainingDiverged(Exception):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based
    train_loss: float
    eval_accuracy: (
        float  # on the split passed as eval_set: validation in a search, test in a retrain
    )
    eval_loss: float
    train_seconds: float


@dataclasses.dataclass
class TrainResult:
    model: nn.Module
    history: list[EpochResult]
    normalization: dict[str, list[float]]  # per-channel mean and std of the training images
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


def channel_statistics(images: torch.Tensor) -> dict[str, list[float]]:
    pixels = images.transpose(0, 1).flatten(1).float() / 255
    return {"mean": pixels.mean(1).tolist(), "std": pixels.std(1).tolist()}


def make_normalizer(
    statistics: dict[str, list[float]], device: torch.device, image_size: int = 0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 [B, C, H, W] -> normalised float32, resized to image_size x image_size if given
    (report 004 trained on CIFAR upsampled to STL-10's 96x96), channels_last on CUDA (faster
    convs with bf16)."""
    mean = torch.tensor(statistics["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(statistics["std"], device=device).view(1, -1, 1, 1)
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    size = (image_size, image_size) if image_size else None

    def normalize(images: torch.Tensor) -> torch.Tensor:
        normalized = (images.float() / 255 - mean) / std
        if size is not None and normalized.shape[-2:] != size:
            normalized = nn.functional.interpolate(
                normalized, size=size, mode="bilinear", antialias=True, align_corners=False
            )
        return normalized.contiguous(memory_format=memory_format)

    return normalize


def make_autocast(on_device: torch.device) -> torch.autocast:
    """bf16 on CUDA (tensor cores, no loss scaling needed); plain fp32 on the CPU."""
    return torch.autocast(on_device.type, dtype=torch.bfloat16, enabled=on_device.type == "cuda")


def evaluate(
    model: nn.Module,
    eval_set: LabeledImages,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    autocast: torch.autocast,
    tta: str = "none",
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) over eval_set, in large batches, one host sync at the end."""
    logits = evaluation.predict_logits(model, eval_set.images, normalize, autocast, tta)
    correct = (logits.argmax(1) == eval_set.labels).sum()
    loss_sum = nn.functional.cross_entropy(logits, eval_set.labels, reduction="sum")
    correct_count, loss_total = torch.stack([correct, loss_sum]).double().tolist()
    return correct_count / len(eval_set), loss_total / len(eval_set)


def make_gradient_clipper(model: nn.Module, max_norm: float) -> Callable[[], None]:
    """Decided once, so the training step has no branch on the config."""
    if not max_norm:
        return lambda: None
    parameters = list(model.parameters())
    return lambda: nn.utils.clip_grad_norm_(parameters, max_norm)


def start_phase(
    model: nn.Module, phase: config.Phase, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, optim.Schedule]:
    """A fresh optimizer and schedule for one phase, its schedule spanning the phase's steps."""
    optimizer = optim.OPTIMIZERS[phase.optimizer](
        model.parameters(), lr=phase.lr, weight_decay=phase.weight_decay, **phase.optimizer_args
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
    normalize = make_normalizer(statistics, on_device, trial_config.image_size)
    model = models.build(
        trial_config.model,
        num_classes=num_classes,
        image_shape=trial_config.input_shape(train_set.images.shape[1:]),
        init=trial_config.init,
        **trial_config.model_args,
    )
    model = model.to(on_device, memory_format=torch.channels_last if on_cuda else None)
    models.fit_to_data(model, lambda: normalize(train_set.images[:FIT_IMAGES]))
    batch_size = min(trial_config.batch_size, len(train_set))
    steps_per_epoch = len(train_set) // batch_size  # drop the ragged last batch: BN needs >1 image
    phase_starts = {phase.first_epoch: phase for phase in config.phases(trial_config)}
    augmentation = augment.build(trial_config.augment)
    # Soft targets throughout, so that mixup and cutmix need no other loss.
    targets_of = torch.eye(num_classes, device=on_device)
    criterion = nn.CrossEntropyLoss(label_smoothing=trial_config.label_smoothing)
    autocast = make_autocast(on_device)
    clip_gradients = make_gradient_clipper(model, trial_config.grad_clip_norm)

    def batch_of(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return augmentation(
            normalize(train_set.images[index]), targets_of[train_set.labels[index]], generator
        )

    def run_evaluation(network: nn.Module) -> tuple[float, float]:
        return evaluate(network, eval_set, normalize, autocast, trial_config.tta)

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
    for epoch in range(1, trial_config.epochs + 1):
        if epoch in phase_starts:
            optimizer, schedule = start_phase(model, phase_starts[epoch], steps_per_epoch)
        model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=on_device)
        order = torch.randperm(len(train_set), device=on_device, generator=generator)
        for step in range(steps_per_epoch):
            inputs, targets = batch_of(order[step * batch_size : (step + 1) * batch_size])
            with autocast:
                loss = criterion(network(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip_gradients()
            optimizer.step()
            schedule.per_batch.step()
            loss_sum += loss.detach()
        train_loss = loss_sum.item() / steps_per_epoch  # the epoch's one host sync
        train_seconds = time.perf_counter() - started
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"the training loss became {train_loss} in epoch {epoch}")
        eval_accuracy, eval_loss = run_evaluation(network)
        schedule.step_epoch(train_loss if eval_is_test else eval_loss)
        history.append(EpochResult(epoch, train_loss, eval_accuracy, eval_loss, train_seconds))
        if on_epoch is not None and on_epoch(history[-1]):
            break
    return TrainResult(
        model=model,
        history=history,
        normalization=statistics,
        param_count=count_parameters(model),
        images_per_epoch=steps_per_epoch * batch_size,
        stopped_early=len(history) < trial_config.epochs,
        compile_seconds=compile_seconds,
    )


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.train",
        description="Retrain an exported config on train+val and report its test accuracy.",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML from search.export")
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="dataset folder")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    cli.add_compile_argument(parser)
    parser.add_argument(
        "--output-dir", type=Path, help="where to write results (default: runs/<config name>)"
    )
    parser.add_argument(
        "--attach",
        action="store_true",
        help="attach the checkpoint and metrics to the config's source trial as Optuna "
        "artifacts (shown by optuna-dashboard / search.dashboard)",
    )
    cli.add_storage_argument(parser, purpose="with --attach: the ")
    parser.add_argument(
        "--artifact-dir",
        type=Path,
        default=Path("artifacts"),
        help="with --attach: the artifact store folder (default ./artifacts)",
    )
    return parser


def source_trial(provenance: dict, storage_url: str) -> tuple[optuna.Study, int]:
    """(study, trial number) a config was exported from, for --attach."""
    if "study" not in provenance or "trial" not in provenance:
        raise UsageError("--attach needs a config written by search.export (it names its trial)")
    found = study.load(storage.open_storage(storage_url), provenance["study"])
    if provenance["trial"] not in {t.number for t in found.get_trials(deepcopy=False)}:
        raise UsageError(f"study {provenance['study']} has no trial {provenance['trial']}")
    return found, provenance["trial"]


def attach(paths: list[Path], found: optuna.Study, number: int, artifact_dir: Path) -> None:
    """Optuna refuses artifacts on finished trials, so they go on the study, named after the
    trial (trial-12-checkpoint.pt): optuna-dashboard lists them on the study page."""
    artifact_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))
    with tempfile.TemporaryDirectory() as staging:
        for path in paths:
            named = Path(staging) / f"trial-{number}-{path.name}"
            shutil.copyfile(path, named)
            upload_artifact(artifact_store=store, file_path=str(named), study_or_trial=found)
    names = ", ".join(path.name for path in paths)
    print(f"attached {names} of trial {number} to study {found.study_name} ({artifact_dir})")


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    trial_config, provenance = config.read_file(args.config)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    trial_config = trial_config.replace(**overrides)
    destination = source_trial(provenance, args.storage) if args.attach else None
    on_device = device.resolve(args.device)
    dataset = data.load(trial_config.dataset, args.data_dir)
    train_set = dataset.train + dataset.val
    print(
        f"retraining {trial_config.model} on {dataset.name} train+val ({len(train_set)} images) "
        f"for {trial_config.epochs} epochs on {device.describe(on_device)}"
    )

    def show(result: EpochResult) -> bool:
        print(
            f"epoch {result.epoch:3d}/{trial_config.epochs}  train_loss {result.train_loss:.4f}  "
            f"test_accuracy {result.eval_accuracy:.4f}  {result.train_seconds:.1f} s",
            flush=True,
        )
        return False

    try:
        result = train(
            trial_config, train_set, dataset.test, dataset.num_classes, on_device, on_epoch=show,
            eval_is_test=True, compile_model=args.compile,
        )  # fmt: skip
    except TrainingDiverged as error:
        raise UsageError(f"training diverged: {error}; lower the config's lr") from None
    normalize = make_normalizer(result.normalization, on_device, trial_config.image_size)
    autocast = make_autocast(on_device)
    test_set = dataset.test.to(on_device)
    probabilities = evaluation.predict_probabilities(
        result.model, test_set.images, normalize, autocast, trial_config.tta
    )
    confusion = evaluation.confusion_matrix(
        probabilities.argmax(1), test_set.labels, dataset.num_classes
    )
    print(evaluation.format_report(confusion, dataset.classes))
    if args.compile:
        print(f"torch.compile took {result.compile_seconds:.1f} s (not in the epochs' seconds)")
    metrics = {
        "test_accuracy": result.final.eval_accuracy,
        "test_loss": result.final.eval_loss,
        "train_loss": result.final.train_loss,
        "epochs": len(result.history),
        "param_count": result.param_count,
        "seconds_per_epoch": result.seconds_per_epoch,
        "images_per_second": result.images_per_second,
        "compile_seconds": result.compile_seconds,
        "device": device.describe(on_device),
        "per_class_accuracy": evaluation.per_class_accuracy(confusion, dataset.classes),
        "confusion_matrix": confusion.tolist(),
    }
    output_dir = args.output_dir or Path("runs") / args.config.stem
    output_dir.mkdir(parents=True, exist_ok=True)
    config.write_file(output_dir / "config.yaml", trial_config, provenance)
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    checkpoint.save(
        output_dir / "checkpoint.pt",
        model=result.model,
        normalization=result.normalization,
        trial_config=trial_config,
        classes=dataset.classes,
        image_shape=dataset.image_shape,
        metrics=metrics,
    )
    print(f"test accuracy {metrics['test_accuracy']:.4f}")
    print(f"wrote {output_dir}/checkpoint.pt, metrics.json and config.yaml")
    if destination is not None:
        attach([output_dir / "checkpoint.pt", output_dir / "metrics.json"], *destination,
               args.artifact_dir)  # fmt: skip
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.train")
