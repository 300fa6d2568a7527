import optuna
import pytest
import torch

import models
import spaces
from search import config
from search.train import train

CONTEXT = spaces.SpaceContext(dataset="sample", max_epochs=6, seed=100)

# The parameter schema of each space: renaming one silently breaks resumed studies.
TRAINING = {
    "epochs", "optimizer", "sgd_momentum", "sgd_nesterov", "sgd_lr", "sgd_weight_decay",
    "adam_beta2", "adam_lr", "lion_lr", "adamw_weight_decay", "adam_weight_decay",
    "lamb_weight_decay", "lion_weight_decay", "schedule", "step_fraction", "step_gamma",
    "exponential_gamma", "polynomial_power", "cosine_warmup_fraction", "onecycle_pct_start",
    "cyclic_cycle_fraction", "cyclic_base_fraction", "batch_size", "flip", "label_smoothing",
}  # fmt: skip
AUGMENT = {"crop_padding", "cutout_size"}
PARAMETERS = {
    "resnet": TRAINING | AUGMENT | {"family", "width", "activation", "downsample", "preact_depth"},
    "convnet": TRAINING | AUGMENT | {
        "linear_layers", "blocks", "width", "kernel_size", "growth", "batch_norm", "activation",
        "stem_stride", "head", "dropout", "hidden_width",
    },
    "mlp": TRAINING | {"width", "depth", "dropout", "activation"},
}  # fmt: skip


def sampled(
    name: str, count: int = 200
) -> list[tuple[optuna.trial.FrozenTrial, config.TrialConfig]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(count):
        trial = study.ask()
        out.append((trial, spaces.get(name)(trial, CONTEXT)))
        study.tell(trial, 0.0)
    return [(frozen, cfg) for frozen, (_, cfg) in zip(study.trials, out, strict=True)]


# Spaces that tests register for themselves (tests/test_run.py) are named test_*.
PRODUCT_SPACES = sorted(name for name in spaces.list_spaces() if not name.startswith("test_"))


def test_every_space_has_a_pinned_schema():
    assert PRODUCT_SPACES == sorted(PARAMETERS)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_sampled_configs_are_valid_and_use_the_whole_space(name):
    trials = sampled(name)
    seen_params = set()
    seen_values: dict[str, set] = {}
    for trial, trial_config in trials:
        assert config.from_dict(trial_config.to_dict()) == trial_config  # validates
        assert CONTEXT.max_epochs / 2 <= trial_config.epochs <= CONTEXT.max_epochs
        assert trial_config.seed == CONTEXT.seed + trial.number
        assert trial_config.dataset == "sample"
        seen_params |= set(trial.params)
        for param, value in trial.params.items():
            seen_values.setdefault(param, set()).add(value)
    assert seen_params == PARAMETERS[name]
    for trial, _ in trials:
        for param, distribution in trial.distributions.items():
            if isinstance(distribution, optuna.distributions.CategoricalDistribution):
                assert seen_values[param] == set(distribution.choices), param


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_a_trial_replays_through_its_space(name):
    """FixedTrial(params) rebuilds the same config: the params alone determine the run."""
    for trial, trial_config in sampled(name, 20):
        fixed = optuna.trial.FixedTrial(trial.params, number=trial.number)
        assert spaces.get(name)(fixed, CONTEXT) == trial_config


@pytest.mark.parametrize("name", sorted(PARAMETERS))
@pytest.mark.parametrize("shape, classes", [((3, 32, 32), 10), ((3, 32, 32), 100)])
def test_sampled_models_give_one_logit_per_class(name, shape, classes):
    for _, trial_config in sampled(name, 6):
        args = {**trial_config.model_args, "width": 8}  # the architecture, at test size
        model = models.build(trial_config.model, num_classes=classes, image_shape=shape, **args)
        model.eval()
        assert model(torch.randn(2, *shape)).shape == (2, classes)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_a_sampled_config_trains_one_epoch(name, sample):
    _, trial_config = sampled(name, 1)[0]
    tiny = sample.train.subset(torch.arange(0, 4500, 9))  # 500 images
    trial_config = trial_config.replace(
        epochs=1, batch_size=64, model_args={**trial_config.model_args, "width": 8}
    )
    result = train(trial_config, tiny, sample.val, 10, torch.device("cpu"))
    assert len(result.history) == 1 and 0 <= result.final.eval_accuracy <= 1
