import pytest

from search import config
from search.config import TrialConfig
from search.errors import UsageError

FULL = TrialConfig(
    model="preact_resnet",
    model_args={"depth": 18, "width": 64, "activation": "mish", "downsample": "maxpool"},
    optimizer="sgd",
    optimizer_args={"momentum": 0.9123456789012345, "nesterov": True},
    lr=0.123456789012345678,
    weight_decay=5.0000000001e-4,
    schedule="cosine",
    schedule_args={"warmup_fraction": 0.1},
    batch_size=256,
    epochs=17,
    augment={"flip": {}, "crop": {"padding": 4, "mode": "zeros"}, "cutout": {"size": 12}},
    label_smoothing=0.1,
    grad_clip_norm=2.5,
    seed=12345,
    dataset="cifar100",
)


def test_yaml_round_trip_is_exact(tmp_path):
    path = tmp_path / "config.yaml"
    config.write_file(path, FULL, {"study": "s", "trial": 3})
    loaded, provenance = config.read_file(path)
    assert loaded == FULL
    assert loaded.lr == FULL.lr and loaded.weight_decay == FULL.weight_decay
    assert list(loaded.augment) == ["flip", "crop", "cutout"]  # order is the order applied
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
        ("model: mlp\nepochs: ten\n", "'epochs' must be a int"),
        ("model: mlp\nbatch_size: 0\n", "'batch_size' must be at least 1"),
        ("model: resnet99\n", "unknown model 'resnet99'"),
        ("model: mlp\nmodel_args: {widht: 3}\n", "model 'mlp' has no argument widht"),
        ("model: mlp\noptimizer: sgdd\n", "unknown optimizer 'sgdd'"),
        ("model: mlp\naugment: {flip: {}, cutot: {size: 8}}\n", "unknown augmentation 'cutot'"),
        ("model: mlp\ndataset: cifar11\n", "unknown dataset 'cifar11'"),
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
