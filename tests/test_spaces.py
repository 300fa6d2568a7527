import optuna
import pytest
import torch

import models
import spaces
from models.layers import ACTIVATIONS
from search.training import config, evaluation, optim, tta
from search.training.trainer import train
from spaces.common import ALL_ACTIVATIONS

PLAIN_CONTEXT = spaces.SpaceContext(dataset="sample", epochs=6, seed=100)
# The fine-tuning spaces build on --init-from's network: here a small MLP's (a checkpoint on
# disk is only read by the trainer, which these tests point at no file: init_from="").
PRETRAINED = spaces.Pretrained(
    "pretrained.pt", "mlp", {"width": 32, "depth": 1}, 32, "mirror_translate", {}
)
TUNING_CONTEXT = spaces.SpaceContext("sample", 6, 100, pretrained=PRETRAINED)


def context_for(name: str) -> spaces.SpaceContext:
    return TUNING_CONTEXT if name in spaces.FINE_TUNING else PLAIN_CONTEXT


CONTEXT = PLAIN_CONTEXT  # what every space shares: the budget and the seed

# The parameter schema of each space: renaming one silently breaks resumed studies.
TRAINING = {
    "optimizer",
    "sgd_momentum",
    "sgd_nesterov",
    "sgd_lr",
    "sgd_weight_decay",
    "adam_beta2",
    "adam_lr",
    "lion_lr",
    "adamw_weight_decay",
    "adam_weight_decay",
    "lamb_weight_decay",
    "lion_weight_decay",
    "two_phase",
    "phase2_start",
    "phase2_lr",
    "phase2_weight_decay",
    "schedule",
    "step_fraction",
    "step_gamma",
    "exponential_gamma",
    "polynomial_power",
    "onecycle_pct_start",
    "cyclic_cycle_fraction",
    "cyclic_base_fraction",
    "plateau_factor",
    "plateau_patience",
    "warmup_fraction",
    "init",
    "batch_size",
    "label_smoothing",
    "grad_clip_norm",
}
AUGMENT = {
    "flip",
    "vflip",
    "resized_crop_scale",
    "perspective_distortion",
    "crop_padding",
    "geometric",
    "rotate_degrees",
    "affine_degrees",
    "affine_translate",
    "affine_scale",
    "affine_shear",
    "jitter",
    "grayscale_p",
    "cutout_size",
    "mask_block",
    "mask_p",
    "mixing",
    "mixup_alpha",
    "cutmix_alpha",
}
PARAMETERS = {
    "resnet": TRAINING | AUGMENT | {
        "family", "width", "activation", "downsample", "depth", "block", "rn_width",
        "rn_blocks", "rn_reinject", "rn_spatial_dropout", "masked_pretraining",
        "pretrain_mask_block", "pretrain_mask_p", "pretrain_fraction",
    },
    "convnet": TRAINING | AUGMENT | {
        "family", "pool", "linear_layers", "blocks", "width", "kernel_size",
        "second_kernel_size", "growth", "batch_norm", "activation", "stem_stride", "pool_last",
        "head", "dropout", "dropout_position", "spatial_dropout", "hidden_width", "image_size",
    },
    "mlp": TRAINING | AUGMENT | {"width", "depth", "taper", "dropout", "activation", "image_size"},
    "backbone": TRAINING | AUGMENT | {
        "blocks", "parallel", "convs", "width", "kernel_size_1", "kernel_size_2",
        "kernel_size_3", "kernel_size_4", "activation", "dropout", "head",
    },
    "finetune": AUGMENT | {
        "optimizer", "sgd_momentum", "sgd_nesterov", "sgd_lr", "sgd_weight_decay", "adam_beta2",
        "adam_lr", "lion_lr", "adamw_weight_decay", "adam_weight_decay", "lamb_weight_decay",
        "lion_weight_decay", "body_lr_scale", "freeze", "schedule", "step_fraction",
        "step_gamma", "exponential_gamma", "polynomial_power", "onecycle_pct_start",
        "cyclic_cycle_fraction", "cyclic_base_fraction", "plateau_factor", "plateau_patience",
        "warmup_fraction", "batch_size", "label_smoothing",
    },
    "densenet": TRAINING | AUGMENT | {
        "depth", "growth_rate", "compression", "bottleneck", "activation",
    },
    "fast": {
        "batch_size", "lr_per_1024", "weight_decay_per_1024", "momentum", "translate",
        "cutout_size", "width", "widen", "activation", "bias_lr_scale", "warmup_fraction", "init",
        "label_smoothing", "tta",
    },
}  # fmt: skip

# Test-sized versions of each model: the sampled architecture, with fewer channels.
SHRINK = {
    "resnet": {"width": 8},
    "resnet9": {"width": 8},
    "rn": {"width": 8, "blocks": 2},
    "convnet": {"width": 8},
    "mlp": {"width": 32},
    "backbone": {"width": 8, "parallel": 2},
    "densenet": {"depth": 22, "growth_rate": 4},
    "fastnet": {"width": 8},
    "lenet5": {},
}


def shrunk(trial_config: config.TrialConfig) -> config.TrialConfig:
    return trial_config.replace(
        model_args={**trial_config.model_args, **SHRINK[trial_config.model]}
    )


def sampled(
    name: str, count: int = 300
) -> list[tuple[optuna.trial.FrozenTrial, config.TrialConfig]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(count):
        trial = study.ask()
        out.append((trial, spaces.get(name)(trial, context_for(name))))
        study.tell(trial, 0.0)
    return [(frozen, cfg) for frozen, (_, cfg) in zip(study.trials, out, strict=True)]


# Spaces that tests register for themselves (tests/test_run.py) are named test_*.
PRODUCT_SPACES = sorted(name for name in spaces.list_spaces() if not name.startswith("test_"))


def test_the_spaces_offer_every_activation_the_models_know():
    assert ALL_ACTIVATIONS == list(ACTIVATIONS)


def test_every_space_has_a_pinned_schema():
    assert PRODUCT_SPACES == sorted(PARAMETERS)


def test_every_model_is_some_spaces_choice():
    chosen = {cfg.model for name in PRODUCT_SPACES for _, cfg in sampled(name, 60)}
    assert chosen == set(models.list_models()) == set(SHRINK)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_sampled_configs_are_valid_and_use_the_whole_space(name):
    trials = sampled(name)
    seen_params = set()
    seen_values: dict[str, set] = {}
    for trial, trial_config in trials:
        born = config.validate(trial_config)  # as the objective checks it
        assert config.from_dict(born.to_dict()) == born
        assert trial_config.epochs == CONTEXT.epochs  # the pruner shortens, not the space
        assert trial_config.seed == CONTEXT.seed + trial.number
        assert trial_config.dataset == "sample"
        assert 16 <= trial_config.batch_size <= 1024
        seen_params |= set(trial.params)
        for param, value in trial.params.items():
            seen_values.setdefault(param, set()).add(value)
    assert seen_params == PARAMETERS[name]
    for trial, _ in trials:
        for param, distribution in trial.distributions.items():
            if isinstance(distribution, optuna.distributions.CategoricalDistribution):
                assert seen_values[param] == set(distribution.choices), param


def test_the_shared_knobs_reach_every_augmentation_schedule_and_init():
    configs = [cfg for name in ("resnet", "convnet") for _, cfg in sampled(name)]
    augmentations = {name for cfg in configs for name in cfg.augment}
    assert augmentations == {
        "flip", "vflip", "resized_crop", "crop", "rotate", "affine", "perspective", "jitter",
        "grayscale", "cutout", "mask", "mixup", "cutmix",
    }  # fmt: skip
    assert {cfg.schedule for cfg in configs} == {
        "constant", "step", "exponential", "polynomial", "cosine", "onecycle", "cyclic",
        "plateau",
    }  # fmt: skip
    assert {cfg.init for cfg in configs} == {"default", "xavier", "kaiming"}
    assert {cfg.optimizer for cfg in configs} == {
        "sgd", "adam", "adamw", "radam", "lion", "lamb", "ranger",
    }  # fmt: skip
    second = [cfg for cfg in configs if cfg.second_phase is not None]
    switching = [cfg for cfg in second if cfg.second_phase.augment is None]
    assert switching and all(cfg.optimizer != "sgd" for cfg in switching)
    # report 000's stages (resnet space): masked images first, then the sampled augmentation
    staged = [cfg for cfg in second if cfg.second_phase.augment is not None]
    assert staged and all(
        list(cfg.augment) == ["mask"] and cfg.second_phase.optimizer == cfg.optimizer
        for cfg in staged
    )
    assert {cfg.image_size for cfg in configs} == {0, 64, 96}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_a_trial_replays_through_its_space(name):
    """FixedTrial(params) rebuilds the same config: the params alone determine the run."""
    for trial, trial_config in sampled(name, 20):
        fixed = optuna.trial.FixedTrial(trial.params, number=trial.number)
        assert spaces.get(name)(fixed, context_for(name)) == trial_config


@pytest.mark.parametrize("name", sorted(PARAMETERS))
@pytest.mark.parametrize("shape, classes", [((3, 32, 32), 10), ((3, 32, 32), 100)])
def test_sampled_models_give_one_logit_per_class(name, shape, classes):
    for _, trial_config in sampled(name, 8):
        trial_config = shrunk(trial_config)
        seen = trial_config.input_shape(shape)
        model = models.build(trial_config.model, num_classes=classes, image_shape=seen,
                             init=trial_config.init, **trial_config.model_args)  # fmt: skip
        model.eval()
        assert model(torch.randn(2, *seen)).shape == (2, classes)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_a_sampled_config_trains_one_epoch(name, sample):
    """The network the trainer returns has moved from its initial weights, and the accuracy
    it reports is what that network scores on the validation images."""
    _, trial_config = sampled(name, 1)[0]
    tiny = sample.train.subset(torch.arange(0, 4500, 9))  # 500 images
    trial_config = shrunk(trial_config).replace(epochs=1, batch_size=64, init_from="")
    result = train(trial_config, tiny, sample.val, 10, torch.device("cpu"))
    torch.manual_seed(trial_config.seed)  # the trainer builds the network right after this
    initial = models.build(trial_config.model, num_classes=10, init=trial_config.init,
                           image_shape=trial_config.input_shape((3, 32, 32)),
                           **trial_config.model_args)  # fmt: skip
    trained = [p for p in result.model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(trained, (
        p for p in initial.parameters() if p.requires_grad), strict=True))  # fmt: skip
    views = tta.build(trial_config.tta, trial_config.tta_args)
    recount, _ = evaluation.accuracy_and_loss(result.model, sample.val, result.preprocess, views)
    assert len(result.history) == 1 and result.final.val_accuracy == recount


WARM_STARTS = [(name, start) for name in PRODUCT_SPACES for start in spaces.warm_starts(name)]


def test_every_product_space_has_warm_starts():
    assert {name for name, _ in WARM_STARTS} == set(PRODUCT_SPACES)


@pytest.mark.parametrize("name, start", WARM_STARTS, ids=[s.source[:30] for _, s in WARM_STARTS])
def test_every_warm_start_is_a_point_of_its_space(name, start):
    """Enqueued, the warm start sets every parameter the space asks for, each inside its
    range, and nothing else; the sampler chooses nothing."""
    study = optuna.create_study()
    study.enqueue_trial(start.params)
    trial = study.ask()
    trial_config = spaces.get(name)(trial, context_for(name))
    assert trial.params == start.params
    for param, distribution in trial.distributions.items():
        assert distribution._contains(distribution.to_internal_repr(trial.params[param])), param
    born = config.validate(trial_config)
    assert config.from_dict(born.to_dict()) == born


@pytest.mark.parametrize("name, start", WARM_STARTS, ids=[s.source[:30] for _, s in WARM_STARTS])
def test_every_warm_start_trains_at_full_size(name, start, sample):
    """The reports' own networks, unshrunk: two steps of 8 images each on the CPU."""
    trial_config = spaces.get(name)(optuna.trial.FixedTrial(start.params), context_for(name))
    trial_config = trial_config.replace(init_from="")  # the network, trained from scratch
    few = sample.train.subset(torch.arange(16))
    result = train(trial_config.replace(epochs=1, batch_size=8), few, few, 10, torch.device("cpu"))
    assert result.images_per_epoch == 16 and result.param_count > 0
    assert torch.isfinite(torch.tensor(result.final.train_loss))


def test_fine_tuning_keeps_the_pretrained_networks_design():
    for _, trial_config in sampled("finetune", 20):
        assert (trial_config.model, trial_config.model_args) == ("mlp", PRETRAINED.model_args)
        assert trial_config.init_from == "pretrained.pt" and trial_config.image_size == 32
        assert trial_config.tta == "mirror_translate"


def test_trials_the_pruner_compares_are_at_the_same_point_of_their_schedules():
    """Two scripted trials that differ in everything but their schedule: both plan the
    study's whole budget, so after every epoch, where the pruner compares them, their learning
    rates stand at the same fraction of their peaks. (When spaces chose the epochs, a trial
    planned for 3 of 6 epochs had annealed to nothing by epoch 3 while a 6-epoch one was at
    its half, and the pruner saw the short runs as better.)"""
    base = {**spaces.warm_starts("mlp")[1].params, "schedule": "cosine", "warmup_fraction": 0.0}
    short = {**base, "width": 128, "depth": 1, "sgd_lr": 0.05, "batch_size": 256}
    plans = [
        spaces.get("mlp")(optuna.trial.FixedTrial(params), CONTEXT) for params in (base, short)
    ]
    assert [plan.epochs for plan in plans] == [CONTEXT.epochs] * 2
    fractions = []
    for plan in plans:
        steps_per_epoch = 10
        model = torch.nn.Linear(1, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=plan.lr)
        schedule = optim.build_schedule(
            optimizer, plan.schedule, plan.schedule_args, plan.epochs * steps_per_epoch,
            steps_per_epoch,
        )  # fmt: skip
        after_each_epoch = []
        for _ in range(plan.epochs):
            for _ in range(steps_per_epoch):
                optimizer.step()
                schedule.per_batch.step()
            after_each_epoch.append(optimizer.param_groups[0]["lr"] / plan.lr)
        fractions.append(after_each_epoch)
    assert fractions[0] == pytest.approx(fractions[1])
    assert fractions[0][len(fractions[0]) // 2 - 1] > 0.4  # halfway, still well up
