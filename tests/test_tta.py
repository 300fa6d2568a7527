import pytest
import torch
from torch import nn

from search import evaluation
from search.config import TrialConfig
from search.errors import UsageError
from search.tta import TTA, translate

IMAGES = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)


def normalize(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255


def sided_model() -> nn.Module:
    """A linear model on raw pixels: its logits change when an image is mirrored."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))


def logits(model: nn.Module, tta: str) -> torch.Tensor:
    autocast = torch.autocast("cpu", enabled=False)
    return evaluation.predict_logits(model, IMAGES, normalize, autocast, tta)


@pytest.mark.parametrize("name", TTA.names())
def test_every_view_keeps_the_batch_shape(name):
    views = TTA[name](normalize(IMAGES))
    assert views and all(view.shape == IMAGES.shape for view in views)


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
