import collections

import pytest
import torch

import models
from models import parts
from models.fastnet import PatchWhitening
from models.layers import ACTIVATIONS, STEP_COUNTER, count_parameters
from models.resnet import BLOCK_ORDERS
from registry import UsageError
from search.training import checkpoint

# Cheapest arguments per model, so that every registered model is tested on 2 CPU cores.
SMALL = {
    "resnet": {"depth": 10, "width": 8},
    "resnet9": {"width": 8},
    "mlp": {"width": 32},
    "convnet": {"width": 8, "head": "flatten", "linear_layers": 2, "hidden_width": 16},
    "rn": {"width": 8, "blocks": 2},
    "backbone": {"width": 8, "blocks": 2, "parallel": 2, "convs": 2, "head": "mlp"},
    "densenet": {"depth": 22, "growth_rate": 4},
    "fastnet": {"width": 8, "widen": 2},
    "lenet5": {},
}


def test_every_model_has_test_arguments():
    assert sorted(SMALL) == models.list_models()


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("num_classes", [10, 100])
def test_every_model_forward_backward_shape(name, num_classes):
    model = models.build(name, num_classes=num_classes, image_shape=(3, 32, 32), **SMALL[name])
    images = torch.randn(4, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (4, num_classes)
    logits.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", models.list_models())
def test_every_model_takes_stl10_sized_images(name):
    model = models.build(name, num_classes=5, image_shape=(3, 96, 96), **SMALL[name]).eval()
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 5)


@pytest.mark.parametrize("name", models.list_models())
def test_every_model_takes_one_optimizer_step(name):
    torch.manual_seed(0)
    model = models.build(name, num_classes=10, image_shape=(3, 32, 32), **SMALL[name])
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.arange(8))
    loss.backward()
    optimizer.step()
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("name", models.list_models())
def test_batch_norms_count_no_steps_and_still_load_state_saved_with_counters(name):
    """A counter's increment is a kernel a layer a step; nothing reads it while BatchNorm has a
    momentum. A state dict saved with counters (every checkpoint before the counters went)
    loads strictly and fits the network, with or without torch's version metadata."""
    model = models.build(name, num_classes=10, image_shape=(3, 32, 32), **SMALL[name])
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(norm.num_batches_tracked is None for norm in norms)
    assert not any(key.endswith(STEP_COUNTER) for key in model.state_dict())
    model(torch.randn(4, 3, 32, 32))  # a training step's forward, which would count
    saved = model.state_dict()
    old = collections.OrderedDict(saved)  # as saved before: a counter beside each BatchNorm
    for prefix, norm in model.named_modules():
        if norm in norms:
            old[f"{prefix}.{STEP_COUNTER}"] = torch.tensor(12)
    assert checkpoint.misfit(model, old) is None
    model.load_state_dict(old)
    old._metadata = saved._metadata
    model.load_state_dict(old)
    assert all(norm.num_batches_tracked is None for norm in norms)


@pytest.mark.parametrize("block", sorted(BLOCK_ORDERS))
@pytest.mark.parametrize("downsample", ["stride", "maxpool"])
def test_every_block_ordering_and_downsampling_builds(block, downsample):
    model = models.build("resnet", num_classes=5, image_shape=(3, 64, 64), depth=10, width=8,
                         block=block, downsample=downsample)  # fmt: skip
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def test_block_orderings_place_batch_norm_and_activation_as_named():
    """Report 002's orders: the layers of the residual branch and after the addition."""

    def layout(block):
        model = models.build("resnet", num_classes=10, image_shape=(3, 32, 32), depth=10,
                             width=8, block=block)  # fmt: skip
        residual = next(m for m in model.modules() if hasattr(m, "branch"))
        kinds = {torch.nn.Conv2d: "conv", torch.nn.BatchNorm2d: "bn", torch.nn.ReLU: "act"}
        return ([kinds[type(m)] for m in residual.branch], [kinds[type(m)] for m in residual.after])

    assert layout("original") == (["conv", "bn", "act", "conv", "bn"], ["act"])
    assert layout("bn_after_add") == (["conv", "bn", "act", "conv"], ["bn", "act"])
    assert layout("act_before_add") == (["conv", "bn", "act", "conv", "bn", "act"], [])
    assert layout("act_preact") == (["act", "conv", "bn", "act", "conv", "bn"], [])
    assert layout("full_preact") == (["bn", "act", "conv", "bn", "act", "conv"], [])


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_builds(activation):
    model = models.build("resnet9", num_classes=10, image_shape=(3, 32, 32), width=4,
                         activation=activation)  # fmt: skip
    assert torch.isfinite(model(torch.randn(2, 3, 32, 32))).all()


def test_reference_sizes_match_report_002():
    """Report 002: ResNet-9 6,573,130 and ResNet-18 11,173,962 parameters (its ResNet-9 has
    conv biases and a classifier bias: 10 more than ours)."""
    resnet9 = models.build("resnet9", num_classes=10, image_shape=(3, 32, 32))
    resnet18 = models.build("resnet", num_classes=10, image_shape=(3, 32, 32), depth=18)
    assert count_parameters(resnet9) == 6_573_120
    assert count_parameters(resnet18) == 11_173_962


def test_light_densenet_is_near_report_002s_size():
    """Report 002's DenseNet: 614,850 parameters; ours at depth 58, growth 16: 0.55 M."""
    model = models.build("densenet", num_classes=10, image_shape=(3, 32, 32), depth=58,
                         growth_rate=16)  # fmt: skip
    assert 500_000 < count_parameters(model) < 700_000


def test_rr_blocks_see_the_original_image():
    """RR: every block's first conv takes C + 3 channels; RN's takes C."""

    def first_conv_inputs(reinject):
        model = models.build("rn", num_classes=10, image_shape=(3, 32, 32), width=16,
                             blocks=2, reinject=reinject)  # fmt: skip
        return [block.body[0].in_channels for block in model.blocks]

    assert first_conv_inputs(False) == [16, 16]
    assert first_conv_inputs(True) == [19, 19]


def test_backbone_mixes_parallel_branches_with_input_weights():
    model = models.build("backbone", num_classes=10, image_shape=(3, 32, 32), blocks=2,
                         parallel=3, convs=2, width=8)  # fmt: skip
    stages = [m for m in model.modules() if hasattr(m, "gate")]
    assert [len(stage.branches) for stage in stages] == [3, 3]
    # the channels double with every conv layer down the net: 8, 16 | 32, 64
    assert [stage.norm.num_features for stage in stages] == [16, 64]
    weights = stages[0].gate(torch.randn(4, 3, 32, 32))
    assert weights.shape == (4, 3) and ((weights > 0) & (weights < 1)).all()


def test_whitening_stem_whitens_the_patches_it_was_fitted_to():
    torch.manual_seed(0)
    mixing = torch.randn(12, 12)  # correlated patches
    stem = PatchWhitening(3, 2)
    images = (torch.randn(4000, 12) @ mixing).view(4000, 3, 2, 2)
    stem.fit(images)
    outputs = torch.nn.functional.conv2d(images, stem.weight).flatten(1)[:, :12]
    covariance = outputs.T @ outputs / len(outputs)
    assert torch.allclose(covariance, torch.eye(12), atol=0.05)
    assert not stem.weight.requires_grad


def test_the_whitening_stem_runs_in_fp32_under_bf16_autocast(sample):
    """As CUDA runs the network (bf16 autocast), on the CPU's autocast: the stem's output is
    its fp32 output, where the same conv in bf16 is off by a few percent (BENCHMARKS.md: The
    whitening stem in bf16)."""
    from search.training.preprocess import make_normalizer

    stem = PatchWhitening(3, 2)
    normalize = make_normalizer(sample.train.channel_statistics, torch.device("cpu"))
    images = normalize(sample.train.images[:2000])
    stem.fit(images)
    batch = images[:64]
    in_fp32 = stem(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = stem(batch)
        plain_conv = torch.nn.functional.conv2d(batch, stem.weight, stem.bias)
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, in_fp32)
    error = (plain_conv.float() - in_fp32).abs().mean() / in_fp32.abs().mean()
    assert plain_conv.dtype == torch.bfloat16 and error > 0.01  # what it is spared


@pytest.mark.parametrize("init", ["default", "xavier", "kaiming"])
def test_init_schemes_reset_conv_and_linear_weights(init):
    torch.manual_seed(0)
    reference = models.build("convnet", num_classes=10, image_shape=(3, 32, 32), width=8)
    torch.manual_seed(0)
    model = models.build("convnet", num_classes=10, image_shape=(3, 32, 32), width=8, init=init)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    same = torch.equal(conv.weight, next(
        m for m in reference.modules() if isinstance(m, torch.nn.Conv2d)).weight)  # fmt: skip
    assert same == (init == "default")
    if init == "xavier":
        fan_in, fan_out = conv.weight[0].numel(), conv.weight.shape[0] * conv.weight[0, 0].numel()
        assert conv.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 96, 96), (1, 28, 20)])
@pytest.mark.parametrize("stem_stride", [1, 2, 3])
def test_convnet_flatten_head_fits_any_image_size(shape, stem_stride):
    model = models.build("convnet", num_classes=7, image_shape=shape, blocks=5, width=4,
                         head="flatten", stem_stride=stem_stride, kernel_size=5)  # fmt: skip
    assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_mlp_taper_halves_the_width():
    model = models.build("mlp", num_classes=10, image_shape=(3, 32, 32), width=1024, depth=3,
                         taper=True)  # fmt: skip
    linear = [m.out_features for m in model if isinstance(m, torch.nn.Linear)]
    assert linear == [1024, 512, 256, 10]  # report 004's improved TwoLayerNet


def test_bad_model_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="depth must be one of"):
        models.build("resnet", num_classes=10, image_shape=(3, 32, 32), depth=19)
    with pytest.raises(UsageError, match="unknown block"):
        models.build("resnet", num_classes=10, image_shape=(3, 32, 32), block="preact")
    with pytest.raises(UsageError, match="unknown downsample"):
        models.build("resnet9", num_classes=10, image_shape=(3, 32, 32), downsample="avg")
    with pytest.raises(UsageError, match="unknown activation"):
        models.build("mlp", num_classes=10, image_shape=(3, 32, 32), activation="swish2")
    with pytest.raises(UsageError, match="has no argument widht"):
        models.build("mlp", num_classes=10, image_shape=(3, 32, 32), widht=3)
    with pytest.raises(UsageError, match="densenet depth must be"):
        models.build("densenet", num_classes=10, image_shape=(3, 32, 32), depth=23)
    with pytest.raises(UsageError, match="unknown init"):
        models.build("mlp", num_classes=10, image_shape=(3, 32, 32), init="orthogonal")


@pytest.mark.parametrize("name", models.list_models())
def test_every_model_ends_in_a_head_that_fine_tuning_can_replace(name):
    model = models.build(name, num_classes=10, image_shape=(3, 32, 32), **SMALL[name]).eval()
    _, head = parts.head(model)
    assert head.out_features == 10
    new = parts.replace_head(model, 5)
    assert parts.head(model)[1] is new and model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_dirac_init_makes_every_trainable_conv_pass_its_input_through():
    model = models.build("convnet", num_classes=10, image_shape=(3, 32, 32), width=8, blocks=3,
                         init="dirac", batch_norm=False)  # fmt: skip
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        inputs = torch.randn(2, conv.in_channels, 8, 8)
        outputs = torch.nn.functional.conv2d(inputs, conv.weight, padding=conv.padding)
        kept = min(conv.in_channels, conv.out_channels)
        assert torch.allclose(outputs[:, :kept], inputs[:, :kept], atol=1e-6)
        assert conv.bias is None or not conv.bias.any()
    stem = models.build("fastnet", num_classes=10, image_shape=(3, 32, 32), width=8,
                        init="dirac")[0]  # fmt: skip
    assert not stem.bias.any()  # airbench zeroes the whitening bias too


def test_lenet5_is_report_004s():
    """6 and 16 unpadded 5x5 channels, 120-84 hidden: 69,656 parameters for CIFAR-100 at
    32x32, 16x21x21 flattened features at 96x96 (the report's own figures)."""
    small = models.build("lenet5", num_classes=100, image_shape=(3, 32, 32))
    assert count_parameters(small) == 69_656
    large = models.build("lenet5", num_classes=100, image_shape=(3, 96, 96))
    assert [m.in_features for m in large if isinstance(m, torch.nn.Linear)] == [7056, 120, 84]


def test_report_004s_convnet_is_laid_out_as_the_report_says():
    model = models.build(
        "convnet", num_classes=100, image_shape=(3, 96, 96), blocks=5, width=64,
        kernel_sizes=[3, 5, 3, 3, 3], stem_stride=3, stem_padding=0, pool_last=False,
        linear_layers=3, hidden_width=512, dropout=0.5, dropout_position="last",
    )  # fmt: skip
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (64, 3, 3, 0), (128, 5, 1, 2), (256, 3, 1, 1), (512, 3, 1, 1), (1024, 3, 1, 1),
    ]  # fmt: skip
    blocks = model[0]
    pooled = [any(isinstance(m, torch.nn.MaxPool2d) for m in block) for block in blocks[:5]]
    assert pooled == [False, True, True, True, False]  # no pool before the global average
    head = [type(m).__name__ for m in model[1:]]
    assert head == ["Linear", "ReLU", "Linear", "ReLU", "Dropout", "Linear"]
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 100)


def test_backbone_takes_a_kernel_per_layer_and_even_kernels():
    model = models.build("backbone", num_classes=10, image_shape=(3, 32, 32), blocks=2,
                         parallel=2, convs=2, width=8, kernel_sizes=[2, 3, 5, 2])  # fmt: skip
    kernels = [m.kernel_size[0] for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert kernels == [2, 3, 2, 3, 5, 2, 5, 2]  # branch by branch, layer by layer
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
