import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from registry import UsageError
from search.training import data


def test_sample_is_the_packaged_cifar10_subset(sample):
    assert sample.classes[:3] == ("airplane", "automobile", "bird")
    assert sample.image_shape == (3, 32, 32)
    assert sample.train.images.dtype == torch.uint8
    assert (len(sample.train), len(sample.val), len(sample.test)) == (4500, 500, 1000)
    assert sample.test.labels.bincount().tolist() == [100] * 10


def test_validation_split_is_class_balanced_disjoint_and_seeded():
    labels = torch.arange(10).repeat_interleave(100)
    train, val = data.class_balanced_split(labels, 95, seed=3)
    assert len(val) == 95 and len(train) == 905
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(1000))
    per_class = labels[val].bincount().tolist()
    assert max(per_class) - min(per_class) <= 1
    again, _ = data.class_balanced_split(labels, 95, seed=3)[::-1]
    assert torch.equal(again, val)
    other, _ = data.class_balanced_split(labels, 95, seed=4)[::-1]
    assert not torch.equal(other, val)


def test_validation_comes_from_train_never_from_test(sample):
    """train+val is exactly the official training set; the test split is untouched."""
    source = data.DATASETS["sample"](None)
    rejoined = torch.cat([sample.train.images, sample.val.images]).flatten(1)
    assert len(rejoined) == len(source.train)
    assert torch.equal(rejoined.sum(0), source.train.images.flatten(1).sum(0))
    assert torch.equal(sample.test.images, source.test.images)


def write_png(path, size, value):
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)


def write_folder(root, sizes):
    for split, count in (("train", 6), ("test", 2)):
        for class_index, name in enumerate(["cat", "dog"]):
            for i in range(count):
                size = sizes[(class_index + i) % len(sizes)]
                folder = root / split / name
                folder.mkdir(parents=True, exist_ok=True)
                write_png(folder / f"{i}.png", size, value=40 * class_index + i)


def test_imagefolder_decodes_caches_and_notices_changes(tmp_path):
    write_folder(tmp_path, sizes=[8])
    dataset = data.load("imagefolder", tmp_path)
    assert dataset.classes == ("cat", "dog")
    assert (len(dataset.train) + len(dataset.val), len(dataset.test)) == (12, 4)
    assert dataset.image_shape == (3, 8, 8)
    assert (tmp_path / data.CACHE_NAME).exists()
    # Pixel values encode the class, so labels must line up with images.
    pixels = dataset.test.images[:, 0, 0, 0].long()
    assert torch.equal(pixels // 40, dataset.test.labels)

    (tmp_path / "train" / "bird").mkdir()
    write_png(tmp_path / "train/bird/0.png", 8, value=0)
    assert data.load("imagefolder", tmp_path).classes == ("bird", "cat", "dog")


def test_imagefolder_refuses_mixed_sizes_and_missing_folders(tmp_path):
    write_folder(tmp_path, sizes=[8, 9])
    with pytest.raises(UsageError, match="different sizes"):
        data.load("imagefolder", tmp_path)
    with pytest.raises(UsageError, match="has no train/ folder"):
        data.load("imagefolder", tmp_path / "missing")


def test_cifar10_without_files_or_network_names_data_dir(tmp_path):
    with pytest.raises(UsageError, match="--data-dir"):
        data.load("cifar10", tmp_path / "nothing-here")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(UsageError, match="choose one of: cifar10, cifar100, imagefolder, sample"):
        data.load("mnist", None)


def test_the_sample_is_decoded_once_into_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    decoded = data.load("sample", Path("unused"))
    cache = tmp_path / "cifar-search" / "sample.pt"
    assert cache.exists()
    cached = data.load("sample", Path("unused"))
    assert torch.equal(cached.train.images, decoded.train.images)
    assert torch.equal(cached.test.labels, decoded.test.labels)
    torch.save({"fingerprint": "another archive", "source": None}, cache)
    assert torch.equal(data.load("sample", Path("unused")).val.images, decoded.val.images)
    assert torch.load(cache, weights_only=False)["fingerprint"] != "another archive"


STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
                 "truck"]  # fmt: skip


def write_stl10(root, per_class: int) -> None:
    """STL-10's binary layout (stl10_binary/*.bin, as torchvision reads it): uint8 images
    stored column-major, 1-based labels; image k of class c is filled with the value 10c + k."""
    folder = root / "stl10_binary"
    folder.mkdir()
    (folder / "class_names.txt").write_text("\n".join(STL10_CLASSES) + "\n")
    for split in ("train", "test"):
        labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
        images = np.stack([np.full((3, 96, 96), 10 * c + k % per_class, dtype=np.uint8)
                           for k, c in enumerate(labels)])  # fmt: skip
        images[:, :, 0, 1] = 255  # one marked pixel: row 0, column 1 of every image
        images.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")
        (labels + 1).tofile(folder / f"{split}_y.bin")


def test_stl10_loads_through_torchvision_and_takes_report_004s_five_classes(tmp_path):
    write_stl10(tmp_path, per_class=4)
    whole = data.load("stl10", tmp_path)
    assert whole.classes == tuple(STL10_CLASSES) and whole.image_shape == (3, 96, 96)
    assert torch.all(whole.test.images[:, :, 0, 1] == 255)  # rows and columns the right way
    five = data.load("stl10", tmp_path, classes=["car", "deer", "horse", "monkey", "truck"])
    assert five.classes == ("car", "deer", "horse", "monkey", "truck")
    assert five.test.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    original = [STL10_CLASSES.index(name) for name in five.classes]
    assert five.test.images[:, 0, 5, 5].tolist() == [10 * c + k for c in original
                                                    for k in range(4)]  # fmt: skip
    assert len(five.train) + len(five.val) == 20


def test_16_bit_images_keep_their_grey_levels_where_plain_pil_clips_them_to_white(tmp_path):
    levels = np.linspace(0, 65535, 64).reshape(8, 8).astype(np.uint16)
    encoded = io.BytesIO()
    Image.fromarray(levels).save(encoded, format="PNG")
    decoded = data.decode_image(encoded.getvalue())
    assert decoded.shape == (3, 8, 8) and decoded.dtype == torch.uint8
    expected = torch.from_numpy(np.round(levels / 257.0).astype(np.uint8))
    assert torch.equal(decoded[0], expected) and torch.equal(decoded[2], expected)
    with Image.open(io.BytesIO(encoded.getvalue())) as image:
        clipped = np.asarray(image.convert("RGB"))[..., 0]
    assert (clipped == 255).mean() > 0.9  # what PIL's convert alone gives: nearly all white


def test_a_set_s_channel_statistics_are_computed_once_and_kept_on_its_device(sample):
    """Every trial of a worker trains on the same set: moving it to the device it is on gives
    the same set back, and its statistics (a pass over every image) are those of its images."""
    from search.training.preprocess import channel_statistics

    train = sample.train
    assert train.to(torch.device("cpu")) is train
    assert train.channel_statistics == channel_statistics(train.images)
    assert train.channel_statistics is train.channel_statistics
    assert train.subset(torch.arange(10)).channel_statistics == channel_statistics(
        train.images[:10]
    )
