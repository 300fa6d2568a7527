"""The usual way to train a CIFAR network, which search.bench measures ours against: a
torchvision DataLoader over PIL images with PIL transforms in worker processes, fp32,
batch 128, and the training loss read back after every step for logging."""

import dataclasses
import time

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

import models
from search.training.data import LabeledImages
from search.training.preprocess import channel_statistics

BATCH_SIZE = 128


class PilImages(torch.utils.data.Dataset):
    """One PIL image per item from uint8 arrays, as torchvision.datasets.CIFAR10 serves its
    pickled arrays: the per-image decode and transform cost is what the plain pipeline pays."""

    def __init__(self, images: LabeledImages, transform: transforms.Compose):
        self.pixels = np.ascontiguousarray(images.images.permute(0, 2, 3, 1).numpy())  # NHWC
        self.labels = images.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.pixels[index])), self.labels[index]


def standard_transform(images: torch.Tensor) -> transforms.Compose:
    """Random crop with 1/8 padding, horizontal flip, to tensor, normalise: the CIFAR recipe."""
    statistics = channel_statistics(images)
    size = images.shape[-1]
    return transforms.Compose([
        transforms.RandomCrop(size, padding=size // 8),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(statistics["mean"], statistics["std"]),
    ])  # fmt: skip


@dataclasses.dataclass(frozen=True)
class PlainEpoch:
    seconds: float
    train_loss: float  # the mean of the per-step losses the loop logs


def train_epochs(
    train_set: LabeledImages,
    model_args: dict,
    num_classes: int,
    on_device: torch.device,
    loader_workers: int,
    epochs: int,
) -> list[PlainEpoch]:
    """Train a `models` resnet with `model_args` for `epochs` epochs on the CPU-side pipeline,
    timing each (the first includes starting the loader's workers)."""
    torch.backends.cudnn.benchmark = False  # PyTorch's default, whatever ran before here
    loader = DataLoader(
        PilImages(train_set, standard_transform(train_set.images)),
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=loader_workers,
        pin_memory=on_device.type == "cuda",
        drop_last=True,
        persistent_workers=loader_workers > 0,
    )
    model = models.build(
        "resnet", num_classes=num_classes, image_shape=tuple(train_set.images.shape[1:]),
        **model_args,
    ).to(on_device)  # fmt: skip
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    criterion = nn.CrossEntropyLoss()
    timings = []
    for _ in range(epochs):
        model.train()
        started = time.perf_counter()
        running_loss = 0.0
        for images, labels in loader:
            images = images.to(on_device, non_blocking=True)
            labels = labels.to(on_device, non_blocking=True)
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()  # the usual logging: one host sync per step
        seconds = time.perf_counter() - started
        timings.append(PlainEpoch(seconds, running_loss / len(loader)))
    return timings
