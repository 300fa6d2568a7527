"""Datasets as uint8 tensors, decoded once, with a seeded class-balanced validation split.

The search trains on `train` and selects on `val` (held out from the official training set);
`test` is only read when a chosen config is retrained (retrain.py, run by search.train).
"""

import contextlib
import dataclasses
import functools
import hashlib
import io
import os
import pickle
import tarfile
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch
from PIL import Image

from registry import Registry, UsageError
from search.training.preprocess import channel_statistics

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
CACHE_NAME = ".search-uint8-cache.pt"
SAMPLE_ARCHIVE = "assets/cifar10-sample.tar.gz"
DEFAULT_VAL_FRACTION = 0.1


@dataclasses.dataclass(frozen=True)
class LabeledImages:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> "LabeledImages":
        images, labels = self.images.to(device), self.labels.to(device)
        if images is self.images and labels is self.labels:
            return self  # already there: the same set, its channel statistics kept
        return LabeledImages(images, labels)

    @functools.cached_property
    def channel_statistics(self) -> dict[str, list[float]]:
        """preprocess.channel_statistics of these images, computed once: every trial of a
        worker trains on the same set (a pass over all of it: 0.09 s a trial on the sample's
        4,500 images on the 2-core CPU, about 1 s on CIFAR-10's 45,000)."""
        return channel_statistics(self.images)

    def subset(self, index: torch.Tensor) -> "LabeledImages":
        return LabeledImages(self.images[index], self.labels[index])

    def __add__(self, other: "LabeledImages") -> "LabeledImages":
        return LabeledImages(
            torch.cat([self.images, other.images]), torch.cat([self.labels, other.labels])
        )


@dataclasses.dataclass(frozen=True)
class Source:
    """What a dataset loader returns: the official train/test splits as published."""

    classes: tuple[str, ...]
    train: LabeledImages
    test: LabeledImages
    val_size: int | None = None  # the dataset's customary validation size, if it has one


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: LabeledImages  # the official training set minus `val`
    val: LabeledImages
    test: LabeledImages

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS: Registry = Registry("dataset", supplied=("data_dir",))


def _torchvision_split(dataset_class, data_dir: Path, archive_folder: str, split_arguments):
    """One split from torchvision: read from data_dir, downloading there if it is missing."""
    try:
        return dataset_class(data_dir, **split_arguments, download=False)
    except RuntimeError:
        try:
            return dataset_class(data_dir, **split_arguments, download=True)
        except (OSError, URLError, RuntimeError) as error:
            raise UsageError(
                f"{dataset_class.__name__} is not in --data-dir {data_dir} (expected "
                f"{data_dir / archive_folder}) and could not be downloaded ({error}); "
                "download it where there is a network or point --data-dir at a copy"
            ) from None


def _torchvision_cifar(class_name: str, data_dir: Path, archive_folder: str) -> Source:
    import torchvision  # here, not at the top: it adds over a second to every command's start

    dataset_class = getattr(torchvision.datasets, class_name)
    splits = []
    for train in (True, False):
        split = _torchvision_split(dataset_class, data_dir, archive_folder, {"train": train})
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()  # from NHWC
        splits.append(LabeledImages(images, torch.tensor(split.targets, dtype=torch.int64)))
    return Source(tuple(split.classes), splits[0], splits[1])


@DATASETS.register("cifar10")
def cifar10(data_dir: Path) -> Source:
    source = _torchvision_cifar("CIFAR10", data_dir, "cifar-10-batches-py")
    return dataclasses.replace(source, val_size=5000)


@DATASETS.register("cifar100")
def cifar100(data_dir: Path) -> Source:
    return _torchvision_cifar("CIFAR100", data_dir, "cifar-100-python")


def _labelled_stl10():
    """torchvision's STL10, checking only that the labelled files it reads are there: its own
    check hashes all five files on every load, 2.7 GB with the 100,000 unlabelled images that
    are never read here (and every worker process loads the data). Made here because torchvision
    is imported only when a dataset needs it."""
    import torchvision

    class STL10(torchvision.datasets.STL10):  # the same name in messages
        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            files = [name for name, _ in self.train_list[:2] + self.test_list]
            return all((folder / name).is_file() for name in files)

    return STL10


@DATASETS.register("stl10")
def stl10(data_dir: Path) -> Source:
    """STL-10's 5,000 labelled training and 8,000 test images, 96x96 (the unlabelled 100,000
    are not used); validation takes 10% of the training images."""
    dataset_class = _labelled_stl10()
    splits = []
    for split_name in ("train", "test"):
        split = _torchvision_split(dataset_class, data_dir, "stl10_binary", {"split": split_name})
        images = torch.from_numpy(split.data).contiguous()  # already NCHW
        splits.append(LabeledImages(images, torch.from_numpy(split.labels).long()))
    return Source(tuple(split.classes), splits[0], splits[1])


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, faithfully: PIL's convert("RGB") clips 16- and 32-bit grey levels to white, so
    those are scaled to 8 bits first."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        levels = np.asarray(image, dtype=np.float64) / 257.0  # 0..65535 -> 0..255
        image = Image.fromarray(levels.clip(0, 255).round().astype(np.uint8), mode="L")
    elif image.mode == "F":
        image = Image.fromarray(np.asarray(image).clip(0, 255).round().astype(np.uint8), "L")
    return image.convert("RGB")


def decode_image(
    encoded: bytes, size: tuple[int, int] | None = None, name: str = "image"
) -> torch.Tensor:
    """JPEG/PNG/... bytes -> uint8 [3, H, W], resized to size=(H, W) if given. A file that
    is not an image, is truncated or would decompress to an enormous size is one UsageError
    line that names it."""
    try:
        with Image.open(io.BytesIO(encoded)) as image:
            image = _to_rgb(image)
            if size is not None and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return torch.from_numpy(np.array(image)).permute(2, 0, 1)
    except Image.DecompressionBombError:
        raise UsageError(f"{name} is too large to decode safely (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError) as error:  # PIL's ways of saying "not an image"
        raise UsageError(f"cannot read image {name}: {error}") from None


def _decode(
    files: Iterable[tuple[str, str, str, bytes]],
) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """(split, class name, file name, encoded bytes) -> {split: [(class, uint8 [C, H, W])]}."""
    decoded: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for split, class_name, name, encoded in files:
        decoded.setdefault(split, []).append((class_name, decode_image(encoded, name=name)))
    return decoded


def _stack(decoded: dict[str, list[tuple[str, torch.Tensor]]], where: str) -> Source:
    """Turn decoded images into a Source; classes are the sorted training class names."""
    if not decoded.get("train") or not decoded.get("test"):
        raise UsageError(f"{where} needs images under train/<class>/ and test/<class>/")
    classes = tuple(sorted({name for name, _ in decoded["train"]}))
    index = {name: i for i, name in enumerate(classes)}
    splits = []
    for split in ("train", "test"):
        unknown = {name for name, _ in decoded[split]} - set(index)
        if unknown:
            raise UsageError(f"{where}: {split}/ has classes not in train/: {sorted(unknown)}")
        shapes = {tuple(image.shape) for _, image in decoded[split]}
        if len(shapes) > 1:
            raise UsageError(f"{where}: {split}/ holds images of different sizes {sorted(shapes)}")
        if splits and shapes != {tuple(splits[0].images.shape[1:])}:
            raise UsageError(
                f"{where}: test/ images are {'x'.join(map(str, shapes.pop()))} and train/ "
                f"images {'x'.join(map(str, splits[0].images.shape[1:]))} (channels x height "
                "x width); resize them to one size"
            )
        images = torch.stack([image for _, image in decoded[split]])
        labels = torch.tensor([index[name] for name, _ in decoded[split]], dtype=torch.int64)
        splits.append(LabeledImages(images, labels))
    return Source(classes, splits[0], splits[1])


def _cached(cache: Path, fingerprint: str, build: Callable[[], Source]) -> Source:
    """`build()`'s Source, decoded once and then read from `cache` while its inputs'
    `fingerprint` is the same. Every worker process loads the dataset: a read of uint8 tensors
    takes milliseconds where decoding takes seconds."""
    try:
        # Plain tensors, strings and lists only: weights_only loading runs no pickled code,
        # and a cache written by another version of this module reads as a miss, not an error.
        cached = torch.load(cache, weights_only=True)
        if cached["fingerprint"] == fingerprint:
            return Source(
                tuple(cached["classes"]),
                LabeledImages(cached["train_images"], cached["train_labels"]),
                LabeledImages(cached["test_images"], cached["test_labels"]),
            )
    except (OSError, RuntimeError, KeyError, pickle.UnpicklingError):
        pass  # no cache yet, or one this code cannot read: decode again
    source = build()
    partial = cache.with_suffix(f".{torch.randint(1 << 30, ()).item()}.tmp")
    plain = {
        "fingerprint": fingerprint,
        "classes": list(source.classes),
        "train_images": source.train.images,
        "train_labels": source.train.labels,
        "test_images": source.test.images,
        "test_labels": source.test.labels,
    }
    try:  # write-then-rename, so that workers starting together never read half a file
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(plain, partial)
        partial.replace(cache)
    except OSError:  # a read-only folder, or XDG_CACHE_HOME a file: decode again next time
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return source


def user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cifar-search"


@DATASETS.register("sample")
def sample(data_dir: Path) -> Source:
    """500 train and 100 test images per CIFAR-10 class, shipped in the package: runs anywhere.
    Decoded once into the user's cache folder."""
    encoded = resources.files("search").joinpath(SAMPLE_ARCHIVE).read_bytes()

    def decode() -> Source:
        with tarfile.open(fileobj=io.BytesIO(encoded), mode="r:gz") as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
            files = [
                (*Path(m.name).parts[-3:-1], m.name, tar.extractfile(m).read())
                for m in members
                if Path(m.name).suffix.lower() in IMAGE_SUFFIXES
            ]
        return _stack(_decode(files), "the packaged sample")

    fingerprint = hashlib.sha1(encoded).hexdigest()
    return _cached(user_cache_dir() / "sample.pt", fingerprint, decode)


def _image_files(root: Path) -> list[Path]:
    """The image files of root/{train,test}/<class>/; a class folder without any is an error,
    not a class quietly dropped."""
    paths = []
    for split in ("train", "test"):
        for folder in sorted(p for p in (root / split).glob("*") if p.is_dir()):
            images = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            if not images:
                raise UsageError(
                    f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                    "add some or remove the folder"
                )
            paths += images
    return sorted(paths)


@DATASETS.register("imagefolder")
def imagefolder(data_dir: Path) -> Source:
    """Any dataset in image-folder layout: data_dir/train/<class>/*, data_dir/test/<class>/*.
    Decoding is cached in a file next to the data, invalidated when the files change."""
    if not (data_dir / "train").is_dir():
        raise UsageError(f"--data-dir {data_dir} has no train/ folder (expected train/<class>/*)")
    paths = _image_files(data_dir)
    fingerprint = hashlib.sha1()
    for path in paths:
        stat = path.stat()
        fingerprint.update(
            f"{path.relative_to(data_dir)}:{stat.st_size}:{stat.st_mtime_ns};".encode()
        )
    files = ((*path.relative_to(data_dir).parts[:2], str(path), read_image(path)) for path in paths)
    return _cached(
        data_dir / CACHE_NAME,
        fingerprint.hexdigest(),
        lambda: _stack(_decode(files), f"--data-dir {data_dir}"),
    )


def read_image(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read image {path}: {error.strerror}") from None


def class_balanced_split(
    labels: torch.Tensor, val_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val): val takes about val_size/classes random images of every class."""
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    train_parts, val_parts = [], []
    for position, label in enumerate(classes.tolist()):
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        take = val_size // len(classes) + (position < val_size % len(classes))
        val_parts.append(members[:take])
        train_parts.append(members[take:])
    return torch.cat(train_parts).sort().values, torch.cat(val_parts).sort().values


def select_classes(source: Source, names: Sequence[str], dataset: str) -> Source:
    """Only the images of the named classes, relabelled 0, 1, ... in the order given (report
    004 fine-tunes on STL-10's car, deer, horse, monkey and truck)."""
    unknown = [name for name in names if name not in source.classes]
    if unknown or len(set(names)) != len(names):
        what = f"has no class {unknown[0]!r}" if unknown else "got a class twice in"
        raise UsageError(
            f"--classes: {dataset} {what} {','.join(names)}; its classes are: "
            f"{', '.join(source.classes)}"
        )
    relabel = torch.full((len(source.classes),), -1, dtype=torch.int64)
    for new, name in enumerate(names):
        relabel[source.classes.index(name)] = new

    def keep(split: LabeledImages) -> LabeledImages:
        chosen = relabel[split.labels] >= 0
        return LabeledImages(split.images[chosen], relabel[split.labels[chosen]])

    val_size = None
    if source.val_size:  # the customary size, shrunk with the classes
        val_size = max(1, source.val_size * len(names) // len(source.classes))
    return Source(tuple(names), keep(source.train), keep(source.test), val_size)


def load(
    name: str,
    data_dir: Path,
    val_size: int | None = None,
    split_seed: int = 0,
    classes: Sequence[str] = (),
) -> Dataset:
    """Load a registered dataset (only `classes` of it, if named) and hold out a validation
    split from its training set."""
    loader = DATASETS[name]
    source = loader(Path(data_dir).expanduser())
    if classes:
        source = select_classes(source, classes, name)
    if len(source.classes) < 2:
        raise UsageError(
            f"{name} has {len(source.classes)} class ({', '.join(source.classes)}); a "
            "classifier needs two or more"
        )
    if val_size is None:
        val_size = source.val_size or round(DEFAULT_VAL_FRACTION * len(source.train))
    if not 0 < val_size < len(source.train):
        raise UsageError(f"the validation split must hold 1 to {len(source.train) - 1} images")
    train_index, val_index = class_balanced_split(source.train.labels, val_size, split_seed)
    return Dataset(
        name,
        source.classes,
        source.train.subset(train_index),
        source.train.subset(val_index),
        source.test,
    )
