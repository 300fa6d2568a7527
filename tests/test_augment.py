import pytest
import torch

from search import augment


def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def numbered_batch(batch=16, size=8) -> torch.Tensor:
    """Image i is filled with the value i+1, so every pixel says which image it came from."""
    return (
        (torch.arange(batch, dtype=torch.float32) + 1)
        .view(-1, 1, 1, 1)
        .expand(batch, 3, size, size)
        .clone()
    )


@pytest.mark.parametrize("name", augment.AUGMENTATIONS.names())
def test_every_augmentation_keeps_shape_and_image_identity(name):
    """No augmentation may move content between images: labels stay aligned."""
    images = numbered_batch()
    out = augment.AUGMENTATIONS[name](images, generator())
    assert out.shape == images.shape
    for i in range(len(images)):
        assert set(out[i].unique().tolist()) <= {0.0, float(i + 1)}


def test_flip_mirrors_each_image_or_leaves_it():
    images = torch.rand(64, 3, 8, 8)
    out = augment.batch_flip_lr(images, generator())
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 10 < sum(mirrored) < 54  # about half
    assert torch.equal(augment.batch_flip_lr(images, generator(), p=1.0), images.flip(-1))


def test_crop_translates_by_at_most_the_padding():
    images = (torch.arange(8.0) + 1).view(1, 1, 1, 8).expand(256, 1, 8, 8).clone()
    out = augment.batch_crop(images, generator(), padding=2, mode="zeros")
    shifts = set()
    for row in out[:, 0, 4]:  # a middle row is never all padding
        positions = (row != 0).nonzero().flatten()
        values = row[positions]
        assert torch.equal(values, values[0] + torch.arange(len(values)))  # intact, only moved
        shifts.add(int(positions[0] - (values[0] - 1)))
    assert shifts == {-2, -1, 0, 1, 2}
    assert torch.equal(augment.batch_crop(images, generator(), padding=0), images)


def test_cutout_zeroes_one_whole_square_inside_the_image():
    images = torch.ones(128, 3, 16, 16)
    out = augment.batch_cutout(images, generator(), size=6)
    zeroed = out[:, 0] == 0
    assert torch.all(zeroed.sum((1, 2)) == 36)  # never clipped by the border
    assert torch.equal(zeroed, (out == 0).all(1))  # all channels together
    rows_used = zeroed.any(2).float().argmax(1)
    assert rows_used.min() == 0 and rows_used.max() == 10  # reaches both edges, never beyond


def test_build_applies_named_augmentations_in_order():
    images = numbered_batch()
    composed = augment.build({"flip": {"p": 1.0}, "cutout": {"size": 8}})
    out = composed(images, generator())
    assert torch.all(out == 0)  # an 8x8 cutout on 8x8 images leaves nothing
    assert torch.equal(augment.build({})(images, generator()), images)


def test_vflip_and_grayscale_apply_to_whole_images():
    images = torch.rand(64, 3, 8, 8)
    flipped = augment.batch_flip_ud(images, generator(), p=1.0)
    assert torch.equal(flipped, images.flip(-2))
    grey = augment.batch_grayscale(images, generator(), p=1.0)
    assert torch.allclose(grey, images.mean(1, keepdim=True).expand_as(images))
    assert torch.equal(augment.batch_grayscale(images, generator(), p=0.0), images)


@pytest.mark.parametrize("block", [1, 2, 4])
def test_mask_zeroes_whole_blocks_at_about_the_given_rate(block):
    images = torch.ones(64, 3, 16, 16)
    out = augment.batch_mask(images, generator(), block=block, p=0.25)
    zeroed = out[:, 0] == 0
    assert torch.equal(zeroed, (out == 0).all(1))  # all channels together
    blocks = zeroed.unfold(1, block, block).unfold(2, block, block)  # [B, rows, cols, b, b]
    whole = blocks.all(-1).all(-1)
    assert torch.equal(whole, blocks.any(-1).any(-1))  # never part of a block
    assert 0.18 < whole.float().mean() < 0.32
