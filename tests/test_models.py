import pytest
import torch

import models
from models.layers import ACTIVATIONS, count_parameters
from search.errors import UsageError

# Cheapest arguments per model, so that every registered model is tested on 2 CPU cores.
SMALL = {
    "preact_resnet": {"depth": 10, "width": 8},
    "resnet9": {"width": 8},
    "mlp": {"width": 32},
    "convnet": {"width": 8, "head": "flatten", "linear_layers": 2, "hidden_width": 16},
}


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("num_classes", [10, 100])
def test_every_model_forward_backward_shape(name, num_classes):
    model = models.build(name, num_classes=num_classes, image_shape=(3, 32, 32), **SMALL[name])
    images = torch.randn(4, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (4, num_classes)
    logits.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("downsample", ["stride", "maxpool"])
@pytest.mark.parametrize("name", ["preact_resnet", "resnet9"])
def test_resnets_take_both_downsamplings_and_larger_images(name, downsample):
    model = models.build(
        name, num_classes=5, image_shape=(3, 64, 64), downsample=downsample, **SMALL[name]
    )
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds(activation):
    model = models.build("resnet9", num_classes=10, image_shape=(3, 32, 32), width=4,
                         activation=activation)  # fmt: skip
    assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()


def test_reference_sizes_match_report_002():
    """Report 002: ResNet-9 6,573,130 and ResNet-18 11,173,962 parameters (theirs with conv
    biases and a bias on ResNet-9's classifier: 10 and 1,792 more than ours)."""
    resnet9 = models.build("resnet9", num_classes=10, image_shape=(3, 32, 32))
    resnet18 = models.build("preact_resnet", num_classes=10, image_shape=(3, 32, 32), depth=18)
    assert count_parameters(resnet9) == 6_573_120
    assert count_parameters(resnet18) == 11_172_170


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 96, 96), (1, 28, 20)])
@pytest.mark.parametrize("stem_stride", [1, 2])
def test_convnet_flatten_head_fits_any_image_size(shape, stem_stride):
    model = models.build("convnet", num_classes=7, image_shape=shape, blocks=5, width=4,
                         head="flatten", stem_stride=stem_stride, kernel_size=5)  # fmt: skip
    assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_bad_model_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="depth must be one of"):
        models.build("preact_resnet", num_classes=10, image_shape=(3, 32, 32), depth=19)
    with pytest.raises(UsageError, match="unknown downsample"):
        models.build("resnet9", num_classes=10, image_shape=(3, 32, 32), downsample="avg")
    with pytest.raises(UsageError, match="unknown activation"):
        models.build("mlp", num_classes=10, image_shape=(3, 32, 32), activation="swish2")
    with pytest.raises(UsageError, match="has no argument widht"):
        models.build("mlp", num_classes=10, image_shape=(3, 32, 32), widht=3)
