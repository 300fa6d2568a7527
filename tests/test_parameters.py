"""Parameters by rule: which each rule selects, the optimizer groups they make, and freezing."""

import pytest
import torch
from torch import nn

import models
from models import parts
from registry import UsageError
from search.training import parameters
from search.training.parameters import PARAMETER_RULES


def small_net() -> nn.Module:
    return models.build("fastnet", num_classes=10, image_shape=(3, 32, 32), width=4, widen=1)


def names(model: nn.Module, chosen: list[nn.Parameter]) -> set[str]:
    ids = {id(p) for p in chosen}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_each_rule_selects_its_part():
    model = small_net()
    norms = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert names(model, PARAMETER_RULES["norm_biases"](model)) == {f"{n}.bias" for n in norms}
    assert names(model, PARAMETER_RULES["norm"](model)) == {
        f"{n}.{kind}" for n in norms for kind in ("weight", "bias")
    }
    assert names(model, PARAMETER_RULES["stem"](model)) == {"0.weight", "0.bias"}
    head_name, head = parts.head(model)
    assert head.out_features == 10
    assert names(model, PARAMETER_RULES["head"](model)) == {f"{head_name}.weight"}
    assert names(model, PARAMETER_RULES["body"](model)) == {
        n for n, _ in model.named_parameters()
    } - {f"{head_name}.weight"}
    assert names(model, PARAMETER_RULES["biases"](model)) == {
        n for n, _ in model.named_parameters() if n.endswith(".bias")
    }


def test_groups_scale_lr_and_decay_and_hold_every_parameter_once():
    model = small_net()
    groups = parameters.param_groups(
        model, 0.5, 0.01, {"norm_biases": {"lr_scale": 64, "weight_decay_scale": 1 / 64},
                           "norm": {"lr_scale": 2}},
    )  # fmt: skip
    biases, norm_weights, rest = groups
    assert (biases["lr"], biases["weight_decay"]) == (32.0, 0.01 / 64)
    assert (norm_weights["lr"], norm_weights["weight_decay"]) == (1.0, 0.01)
    assert "lr" not in rest  # the optimizer's own lr and weight decay
    everything = [id(p) for group in groups for p in group["params"]]
    assert sorted(everything) == sorted(id(p) for p in model.parameters())
    assert names(model, norm_weights["params"]) == names(
        model, PARAMETER_RULES["norm"](model)
    ) - names(model, biases["params"])  # the first rule that matches takes a parameter


def test_freezing_stops_a_part_after_its_epochs_and_keeps_fixed_filters_fixed():
    model = small_net()
    freezer = parameters.Freezer(model, {"stem": 2, "head": 0})
    stem, head = parts.stem(model)[1], parts.head(model)[1]
    for epoch, bias_trains in ((1, True), (2, True), (3, False)):
        model.train()
        freezer.start_epoch(epoch)
        assert stem.bias.requires_grad == bias_trains
        assert not stem.weight.requires_grad  # the whitening filters were never trainable
        assert not head.weight.requires_grad  # frozen throughout


def test_a_norm_layer_frozen_throughout_keeps_its_statistics():
    model = models.build("convnet", num_classes=10, image_shape=(3, 32, 32), width=4, blocks=2)
    freezer = parameters.Freezer(model, {"body": 0})
    model.train()
    freezer.start_epoch(1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    model(torch.randn(8, 3, 32, 32))
    assert all(not m.training for m in norms)
    assert all(torch.equal(a, m.running_mean) for a, m in zip(before, norms, strict=True))


@pytest.mark.parametrize(
    "groups, freeze, message",
    [
        ({"norm_bias": {"lr_scale": 2}}, {}, "unknown parameter rule 'norm_bias'"),
        ({"norm_biases": {"lr": 2}}, {}, "param_groups.norm_biases takes lr_scale"),
        ({"head": {"lr_scale": -1}}, {}, "must be a number >= 0"),
        ({}, {"stem": -1}, "freeze.stem must be a whole number"),
        ({}, {"tail": 1}, "unknown parameter rule 'tail'"),
    ],
)
def test_bad_rules_and_settings_are_usage_errors(groups, freeze, message):
    with pytest.raises(UsageError, match=message):
        parameters.check(groups, freeze)
