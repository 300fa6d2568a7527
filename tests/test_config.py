import dataclasses

import pytest

from registry import UsageError
from search.training import config
from search.training.config import SecondPhase, TrialConfig

FULL = config.validate(
    TrialConfig(
        model="resnet",
        model_args={
            "depth": 18,
            "width": 64,
            "activation": "mish",
            "downsample": "maxpool",
            "block": "bn_after_add",
        },
        optimizer="adam",
        optimizer_args={"beta2": 0.9123456789012345},
        lr=0.00123456789012345678,
        weight_decay=5.0000000001e-4,
        schedule="cosine",
        warmup_fraction=0.1,
        second_phase=SecondPhase(
            start_fraction=0.6,
            optimizer="sgd",
            lr=0.05,
            optimizer_args={"momentum": 0.9, "nesterov": True},
        ),  # fmt: skip
        init="kaiming",
        batch_size=256,
        epochs=17,
        augment={
            "flip": {},
            "crop": {"padding": 4, "mode": "zeros"},
            "cutout": {"size": 12},
            "cutmix": {"alpha": 0.5},
        },
        label_smoothing=0.1,
        grad_clip_norm=2.5,
        image_size=48,
        param_groups={"norm_biases": {"lr_scale": 64.0, "weight_decay_scale": 0.015625}},
        freeze={"stem": 3},
        averaging="lookahead",
        averaging_args={"every": 5},
        tta="mirror_translate",
        tta_args={"translate_weight": 0.25},
        seed=12345,
        dataset="cifar100",
        classes=["truck", "cat"],
        init_from="/checkpoints/pretrained.pt",
    )
)


def test_yaml_round_trip_is_exact(tmp_path):
    path = tmp_path / "config.yaml"
    config.write_file(path, FULL, {"study": "s", "trial": 3})
    loaded, provenance = config.read_file(path)
    assert loaded == FULL
    assert loaded.lr == FULL.lr and loaded.weight_decay == FULL.weight_decay
    assert list(loaded.augment) == ["flip", "crop", "cutout", "cutmix"]  # the order applied
    assert provenance == {"study": "s", "trial": 3}


def test_dict_round_trip_and_replace():
    assert config.from_dict(FULL.to_dict()) == FULL
    assert FULL.replace(epochs=3).epochs == 3
    assert FULL.replace(epochs=3).model_args == FULL.model_args


def test_hand_written_numbers_in_yaml_1_1_notation_are_read(tmp_path):
    path = tmp_path / "hand.yaml"
    path.write_text("model: mlp\nlr: 1e-3\nweight_decay: 5e-4\ndataset: sample\n")
    loaded, _ = config.read_file(path)
    assert loaded.lr == 1e-3 and loaded.weight_decay == 5e-4


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: mlp\nlearning_rate: 0.1\n", "unknown field 'learning_rate'"),
        ("model: mlp\nepochs: ten\n", "'epochs' must be a whole number"),
        ("model: mlp\nbatch_size: 0\n", "'batch_size' must be at least 1"),
        ("model: resnet99\n", "unknown model 'resnet99'"),
        ("model: mlp\nmodel_args: {widht: 3}\n", "model 'mlp' has no argument widht"),
        ("model: mlp\noptimizer: sgdd\n", "unknown optimizer 'sgdd'"),
        ("model: mlp\naugment: {flip: {}, cutot: {size: 8}}\n", "unknown augmentation 'cutot'"),
        ("model: mlp\ndataset: cifar11\n", "unknown dataset 'cifar11'"),
        ("model: mlp\nclasses: cat\n", "'classes' must be a list"),
        ("model: mlp\nfreeze: {stem: -1}\n", "freeze.stem must be a whole number"),
        ("model: mlp\nparam_groups: {head: {lr: 2}}\n", "param_groups.head takes lr_scale"),
        ("model: mlp\naveraging: ema\n", "unknown weight averaging 'ema'"),
        (
            "model: mlp\ntta: mirror\ntta_args: {translate_weight: 0.5}\n",
            "test-time augmentation 'mirror' has no argument translate_weight",
        ),
        (
            "model: mlp\nsecond_phase: {start_fraction: 0.5, optimizer: sgd, lr: 0.1, "
            "augment: {cutot: {}}}\n",
            "unknown augmentation 'cutot'",
        ),
        ("lr: 0.1\n", "the field 'model' is required"),
        ("- a list\n", "expected a mapping"),
        ("model: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        config.read_file(path)


def test_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read config file"):
        config.read_file(tmp_path / "nope.yaml")


def test_a_second_phase_takes_over_after_its_fraction_and_inherits_what_it_leaves_out():
    first, second = config.phases(FULL)
    assert (first.first_epoch, first.epochs, first.optimizer, first.warmup_fraction) == (
        1, 10, "adam", 0.1,
    )  # fmt: skip
    assert (second.first_epoch, second.epochs, second.optimizer, second.lr) == (11, 7, "sgd", 0.05)
    assert second.schedule == "cosine" and second.weight_decay == FULL.weight_decay
    assert second.warmup_fraction == 0.0 and second.optimizer_args["momentum"] == 0.9
    assert config.phases(FULL.replace(second_phase=None)) == [
        first.__class__(
            1,
            17,
            "adam",
            FULL.optimizer_args,
            FULL.lr,
            FULL.weight_decay,
            "cosine",
            {},
            0.1,
            FULL.augment,
        )
    ]
    assert second.augment == FULL.augment  # kept, unless the second phase names its own
    one_epoch = config.phases(FULL.replace(epochs=1))
    assert len(one_epoch) == 1
    late = config.phases(
        FULL.replace(second_phase=dataclasses.replace(FULL.second_phase, start_fraction=0.99))
    )
    assert [phase.epochs for phase in late] == [16, 1]  # each phase gets at least one epoch


@pytest.mark.parametrize(
    "second_phase, message",
    [
        ({"optimizer": "sgd", "lr": 0.1}, "needs start_fraction"),
        ({"start_fraction": 0.5, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9}, "unknown: momentum"),
        ({"start_fraction": 1.5, "optimizer": "sgd", "lr": 0.1}, "start_fraction' must be in"),
        ({"start_fraction": 0.5, "optimizer": "sgdd", "lr": 0.1}, "unknown optimizer 'sgdd'"),
        ({"start_fraction": 0.5, "optimizer": "sgd", "lr": "fast"}, "second_phase.lr' must be"),
        ({"start_fraction": 0.5, "optimizer": "sgd", "lr": 0.1, "schedule": "cosine",
          "schedule_args": {"gamma": 0.5}}, "schedule 'cosine' has no argument gamma"),
    ],
)  # fmt: skip
def test_bad_second_phases_are_usage_errors(second_phase, message):
    with pytest.raises(UsageError, match=message):
        config.from_dict({**FULL.to_dict(), "second_phase": second_phase})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"start_fraction": 0.5}, "'changes' must be a list of mappings"),
        ([{"lr": 0.1}], "'changes\\[0\\]' must be a mapping with a start_fraction"),
        ([{"start_fraction": 0.5, "momentum": 0.9}], "unknown: momentum"),
        ([{"start_fraction": 0.5}, {"start_fraction": 0.3}], "each later than the last"),
        ([{"start_fraction": 1.0}], "fractions in \\(0, 1\\)"),
        ([{"start_fraction": 0.5, "lr": -1}], "'changes\\[0\\].lr' must not be negative"),
        ([{"start_fraction": 0.5, "lr": "fast"}], "'changes\\[0\\].lr' must be a finite"),
        ([{"start_fraction": 0.5, "augment": {"cutout": {"size": -2}}}], "changes\\[0\\].augment.cutout"),
    ],
)  # fmt: skip
def test_bad_changes_are_usage_errors(changes, message):
    with pytest.raises(UsageError, match=message):
        config.from_dict({**FULL.to_dict(), "changes": changes})


def test_changes_apply_in_their_phase_from_their_epoch_and_a_second_phase_starts_afresh():
    """17 epochs, the second phase from epoch 11 (0.6): a change at 0.3 (after epoch 5) sets
    the first phase's rate and augmentation from epoch 6; the second phase's are its own."""
    changed = FULL.replace(changes=[{"start_fraction": 0.3, "lr": 0.5, "augment": {"flip": {}}}])
    assert config.change_epoch(changed, changed.changes[0]) == 6
    assert (config.phase_at(changed, 5).lr, config.phase_at(changed, 6).lr) == (FULL.lr, 0.5)
    assert config.phase_at(changed, 6).augment == {"flip": {}}
    assert config.phase_at(changed, 11) == config.phase_at(FULL, 11)
    assert config.changes_at(changed, 6) and not config.changes_at(changed, 7)
    assert config.as_of(changed, 5) == FULL and config.as_of(changed, 6) == changed
    again = config.from_dict(changed.to_dict())  # as a file or a trial's record holds it
    assert again == changed


def test_a_hand_written_second_phase_may_write_1e_3():
    """YAML 1.1 reads 1e-3 as text; numbers in second_phase are read like the top level's."""
    loaded = config.from_dict({**FULL.to_dict(), "second_phase": {
        "start_fraction": "0.5", "optimizer": "adam", "lr": "1e-3"}})  # fmt: skip
    assert config.phases(loaded)[1].lr == 0.001


def test_input_shape_follows_image_size():
    assert FULL.input_shape((3, 32, 32)) == (3, 48, 48)
    assert FULL.replace(image_size=0).input_shape((3, 32, 32)) == (3, 32, 32)
