import pytest
import torch
from torch import nn

from registry import UsageError
from search.training import evaluation, tta
from search.training.config import TrialConfig
from search.training.preprocess import Preprocess
from search.training.tta import TTA, translate

IMAGES = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)


def normalize(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255


def sided_model() -> nn.Module:
    """A linear model on raw pixels: its logits change when an image is mirrored."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))


def logits(model: nn.Module, name: str, **arguments) -> torch.Tensor:
    preprocess = Preprocess(normalize, torch.autocast("cpu", enabled=False))
    return evaluation.predict_logits(model, IMAGES, preprocess, tta.build(name, arguments))


@pytest.mark.parametrize("name", TTA.names())
def test_every_view_keeps_the_batch_shape_and_the_weights_sum_to_one(name):
    views = TTA[name](normalize(IMAGES))
    assert views and all(view.shape == IMAGES.shape for _, view in views)
    assert sum(weight for weight, _ in views) == pytest.approx(1.0)


def test_translate_shifts_the_content_by_whole_pixels():
    images = normalize(IMAGES)
    assert torch.equal(translate(images, 1)[..., 1:, 1:], images[..., :-1, :-1])
    assert torch.equal(translate(images, -1)[..., :-1, :-1], images[..., 1:, 1:])
    assert torch.equal(translate(images, 0), images)


def test_disabled_tta_is_the_plain_forward_pass():
    model = sided_model().eval()
    with torch.no_grad():
        assert torch.equal(logits(model, "none"), model(normalize(IMAGES)))


def test_mirror_averages_the_image_and_its_mirror():
    model = sided_model().eval()
    with torch.no_grad():
        expected = (model(normalize(IMAGES)) + model(normalize(IMAGES).flip(-1))) / 2
    assert torch.allclose(logits(model, "mirror"), expected, atol=1e-6)
    assert not torch.allclose(logits(model, "mirror"), logits(model, "none"))
    assert len(TTA["mirror_translate"](normalize(IMAGES))) == 6


def test_a_config_with_an_unknown_tta_is_refused():
    with pytest.raises(UsageError, match="test-time augmentation 'flip'"):
        TrialConfig(model="mlp", tta="flip").replace()


def test_mirror_translate_weighs_the_views_as_airbench94_does():
    """airbench's infer_mirror_translate, computed here from its own description: half the
    mirror pair of the image, half the mean of the mirror pairs of the image reflect-padded
    by one pixel and cropped at the top-left and bottom-right corners."""
    model = sided_model().eval()
    images = normalize(IMAGES)

    def mirror_pair(x):
        return 0.5 * model(x) + 0.5 * model(x.flip(-1))

    padded = torch.nn.functional.pad(images, (1,) * 4, mode="reflect")
    shifted = [padded[:, :, 0:8, 0:8], padded[:, :, 2:10, 2:10]]
    with torch.no_grad():
        expected = 0.5 * mirror_pair(images) + 0.5 * torch.stack(
            [mirror_pair(view) for view in shifted]
        ).mean(0)
    assert torch.allclose(logits(model, "mirror_translate"), expected, atol=1e-6)
    equal_weights = logits(model, "mirror_translate", translate_weight=4 / 6)
    with torch.no_grad():
        six = [model(view) for _, view in TTA["mirror_translate"](images)]
    assert torch.allclose(equal_weights, torch.stack(six).mean(0), atol=1e-6)


def airbench_infer_mirror_translate(inputs: torch.Tensor, net: nn.Module) -> torch.Tensor:
    """airbench94's own test-time augmentation (airbench 0.1.8, lib_airbench94.py), copied
    as written there, as the reference for `mirror_translate`."""

    def infer_mirror(inputs, net):
        return 0.5 * net(inputs) + 0.5 * net(inputs.flip(-1))

    logits = infer_mirror(inputs, net)
    pad = 1
    padded_inputs = nn.functional.pad(inputs, (pad,) * 4, "reflect")
    inputs_translate_list = [
        padded_inputs[:, :, 0:8, 0:8],  # airbench's 0:32 on its 32x32 images
        padded_inputs[:, :, 2:10, 2:10],
    ]
    logits_translate_list = [infer_mirror(x, net) for x in inputs_translate_list]
    logits_translate = torch.stack(logits_translate_list).mean(0)
    return 0.5 * logits + 0.5 * logits_translate


def test_mirror_translate_is_airbenchs_weighting_of_its_views():
    model = sided_model().eval()
    with torch.no_grad():
        expected = airbench_infer_mirror_translate(normalize(IMAGES), model)
    assert torch.allclose(logits(model, "mirror_translate"), expected, atol=1e-6)
    # equal weights for the six views, as before the fix, would not be airbench's
    assert not torch.allclose(logits(model, "mirror_translate", translate_weight=2 / 3), expected)
