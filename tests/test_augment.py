import pytest
import torch

from registry import UsageError
from search.training import augment


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


def one_hot(batch=16, classes=16) -> torch.Tensor:
    return torch.eye(classes)[torch.arange(batch) % classes]


def batch_info(batch=16, epoch=1) -> augment.BatchInfo:
    """The batch as the first `batch` images of a training set of 64, in `epoch`."""
    return augment.BatchInfo.draw(64, generator()).of(torch.arange(batch), epoch)


def apply(name: str, images: torch.Tensor, epoch=1, **arguments) -> torch.Tensor:
    """One image augmentation through the pipeline, as the trainer applies it."""
    targets = one_hot(len(images))
    out, _ = augment.build({name: arguments})(images, targets, generator(), batch_info(
        len(images), epoch))  # fmt: skip
    return out


@pytest.mark.parametrize("name", augment.AUGMENTATIONS.names())
def test_every_augmentation_keeps_shape_and_image_identity(name):
    """No augmentation may move content between images: labels stay aligned. Image i holds
    the value i+1; whatever an augmentation blanks (0), blends at the borders or shifts in
    colour, its commonest remaining value must still say which image it was."""
    images = numbered_batch(size=16)
    out = apply(name, images)
    assert out.shape == images.shape
    for i in range(len(images)):
        values = out[i].round()
        assert values[values != 0].mode().values == i + 1, (name, i)


@pytest.mark.parametrize("name", augment.names())
def test_every_augmentation_runs_in_a_pipeline_with_soft_targets(name):
    images, targets = torch.randn(16, 3, 16, 16), one_hot()
    out, out_targets = augment.build({name: {}})(images, targets, generator(), batch_info())
    assert out.shape == images.shape and torch.isfinite(out).all()
    assert torch.allclose(out_targets.sum(1), torch.ones(16))
    if name in augment.AUGMENTATIONS:
        assert torch.equal(out_targets, targets)


@pytest.mark.parametrize("name", augment.names())
def test_every_augmentation_keeps_the_layout_it_is_given(name):
    """A channels_last batch comes out channels_last, a contiguous one contiguous (the
    network is built for one, and torch.compile guards on strides), with the same values
    whichever layout went in."""
    torch.manual_seed(0)
    images, targets = torch.randn(16, 3, 16, 16), one_hot()
    outputs = []
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(1)  # mixup's and cutmix's Beta draws
        out, _ = augment.build({name: {}})(
            images.contiguous(memory_format=layout), targets, generator(), batch_info()
        )
        assert out.is_contiguous(memory_format=layout), layout
        outputs.append(out)
    torch.testing.assert_close(*outputs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", augment.MIXINGS.names())
def test_mixing_blends_targets_exactly_as_it_blends_images(name):
    """Image i is the constant i+1 and of class i, so a mixed image's mean value must equal
    its soft target's mixture of (class + 1): pixels and labels mixed in the same ratio."""
    images = numbered_batch(size=16)
    out, targets = augment.MIXINGS[name](images, one_hot(), generator())
    assert torch.allclose(targets.sum(1), torch.ones(16))
    assert ((targets > 0).sum(1) <= 2).all()  # itself and one partner
    expected = targets @ (torch.arange(16.0) + 1)
    assert torch.allclose(out.mean((1, 2, 3)), expected, atol=1e-4)
    assert (targets.max(1).values < 1).any()  # something was mixed


def test_affine_and_rotate_leave_images_unchanged_at_zero_strength():
    images = torch.rand(8, 3, 16, 16)
    still = augment.batch_affine(images, generator(), degrees=0.0, translate=0.0,
                                 scale_low=1.0, scale_high=1.0)  # fmt: skip
    assert torch.allclose(still, images, atol=1e-5)
    assert torch.allclose(augment.batch_rotate(images, generator(), degrees=0.0), images,
                          atol=1e-5)  # fmt: skip
    turned = augment.batch_rotate(images, generator(), degrees=90.0)
    assert not torch.allclose(turned, images, atol=1e-2)


def test_jitter_changes_each_images_colours_by_at_most_its_strength():
    images = torch.randn(64, 3, 8, 8)
    out = augment.batch_color_jitter(images, generator(), brightness=0.3, contrast=0.0,
                                     saturation=0.0)  # fmt: skip
    shift = (out - images).mean((1, 2, 3))
    assert torch.allclose(out - images, shift.view(-1, 1, 1, 1).expand_as(images), atol=1e-5)
    assert shift.abs().max() <= 0.3 and shift.std() > 0.05


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
    images, targets = numbered_batch(), one_hot()
    composed = augment.build({"flip": {"p": 1.0}, "cutout": {"size": 8}})
    out, _ = composed(images, targets, generator(), batch_info())
    assert torch.all(out == 0)  # an 8x8 cutout on 8x8 images leaves nothing
    unchanged = augment.build({})(images, targets, generator(), batch_info())
    assert torch.equal(unchanged[0], images) and torch.equal(unchanged[1], targets)


def test_unknown_augmentations_are_usage_errors_that_list_all():
    with pytest.raises(UsageError, match="unknown augmentation 'mixpu'.*cutmix.*mixup"):
        augment.check_arguments("mixpu", {})
    with pytest.raises(UsageError, match="has no argument beta"):
        augment.check_arguments("mixup", {"beta": 1.0})


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


def test_alternating_flip_shows_each_image_the_other_side_every_next_epoch():
    """airbench94's flip: a random half mirrored in epoch 1, then every image turned over in
    every following epoch, so each side of each image is seen every two epochs."""
    images = torch.rand(64, 3, 8, 8)
    first, second, third = (apply("alternating_flip", images, epoch=e) for e in (1, 2, 3))
    mirrored = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(first, images,
                                                                         strict=True)])  # fmt: skip
    assert 16 < mirrored.sum() < 48  # about half in the first epoch
    assert torch.equal(first, third)  # the same side again two epochs on
    for one, two in zip(first, second, strict=True):
        assert torch.equal(one.flip(-1), two)  # and the other side in between
    info = augment.BatchInfo.draw(64, generator())
    whole = augment.batch_flip_alternating(images, generator(), info.of(torch.arange(64), 1))
    later = augment.batch_flip_alternating(images[40:], generator(),
                                           info.of(torch.arange(40, 64), 1))  # fmt: skip
    assert torch.equal(later, whole[40:])  # decided per training image, not per batch slot
