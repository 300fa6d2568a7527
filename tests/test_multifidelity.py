"""The multi-fidelity TPE sampler (--sampler mf-tpe): the epoch it models at (BOHB's rule),
the study as its TPE sees it there, and where it proposes against Optuna's TPE on a study in
which early values and the trials that went furthest disagree."""

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.tuning.strategies import samplers
from search.tuning.strategies.multifidelity import MultiFidelityTPE, at_epoch, highest_epoch

X = {"x": FloatDistribution(0.0, 1.0)}


def trial_of(x: float, curve: list[float], state=TrialState.PRUNED, value=None):
    return create_trial(
        state=state, value=value, params={"x": x}, distributions=X,
        intermediate_values=dict(enumerate(curve, start=1)),
    )  # fmt: skip


def test_the_modelled_epoch_is_the_highest_that_enough_trials_reached():
    trials = [trial_of(0.1, [0.5] * 4) for _ in range(10)] + [trial_of(0.2, [0.5] * 8)] * 3
    assert highest_epoch(trials, 10) == 4
    assert highest_epoch(trials, 3) == 8
    assert highest_epoch(trials, 14) is None
    assert highest_epoch(trials, 10, lowest=5) is None  # epoch 4 is too early to model
    short = [trial_of(0.1, [0.5] * 2) for _ in range(10)]  # a study of 2 epochs
    assert highest_epoch(short, 10, lowest=3) == 2  # its last epoch will do
    assert highest_epoch(trials, 4) == 4  # three at 8, the fourth highest at 4
    early = short + [trial_of(0.2, [0.5] * 8)]  # one trial went on: epoch 2 is too early
    assert highest_epoch(early, 10, lowest=3) is None
    first = [trial_of(0.1, [0.5]) for _ in range(3)] + [trial_of(0.2, [0.5] * 8)]
    assert highest_epoch(first, 3) == 1  # with no lowest, the first epoch will do


def test_at_an_epoch_each_trial_that_reached_it_is_finished_at_its_value_there():
    study = optuna.create_study()
    study.add_trial(trial_of(0.1, [0.3, 0.4]))
    study.add_trial(trial_of(0.2, [0.6]))
    study.add_trial(trial_of(0.3, [0.5, 0.7, 0.8], TrialState.COMPLETE, 0.8))
    running = study.ask({"x": X["x"]})
    running.report(0.9, 1)
    seen = at_epoch(study.get_trials(deepcopy=False), 2)
    assert [(t.number, t.state, t.value) for t in seen] == [
        (0, TrialState.COMPLETE, 0.4), (2, TrialState.COMPLETE, 0.7), (3, TrialState.RUNNING, None)
    ]  # fmt: skip


def misleading_study() -> optuna.Study:
    """At epoch 4, x near 0.2 is best; those trials were stopped there, while 8 trials far from
    it went on to epoch 8 and finished (as an asynchronous rung lets its first trials by)."""
    study = optuna.create_study(direction="maximize")
    for i in range(24):
        x = (i + 0.5) / 24
        value = 1 - abs(x - 0.2)
        if x > 0.65:
            study.add_trial(trial_of(x, [value] * 8, TrialState.COMPLETE, value))
        else:
            study.add_trial(trial_of(x, [value] * 4))
    return study


def proposals(sampler, n: int = 30) -> list[float]:
    study = misleading_study()
    study.sampler = sampler
    found = []
    for _ in range(n):
        trial = study.ask({"x": X["x"]})
        found.append(trial.params["x"])
        study.tell(trial, state=TrialState.FAIL)  # leaves the study as it was
    return found


def test_it_proposes_where_the_values_at_one_epoch_point_while_tpe_follows_the_furthest():
    modelled = proposals(MultiFidelityTPE(samplers.tpe(0), 0, random_fraction=0.0))
    plain = proposals(samplers.tpe(0))
    assert sum(abs(x - 0.2) < 0.15 for x in modelled) >= 20
    assert sum(x > 0.65 for x in plain) >= 20


def test_a_random_fraction_of_its_trials_skip_the_model():
    never = proposals(MultiFidelityTPE(samplers.tpe(0), 0, random_fraction=1.0))
    assert sum(abs(x - 0.2) < 0.15 for x in never) < 15  # uniform: about 9 of 30
    default = samplers.SAMPLERS["mf-tpe"](0)
    study = misleading_study()
    study.sampler = default
    modelled = 0
    for _ in range(60):
        trial = study.ask({"x": X["x"]})
        study.tell(trial, state=TrialState.FAIL)
        traces = study.trials[-1].system_attrs  # the constant liar's record of TPE's proposal
        modelled += any(key.startswith("tpe:relative_params") for key in traces)
    assert 18 <= modelled <= 42  # half of 60 use the model (binomial, 3 deviations)


def test_the_first_epoch_alone_is_not_modelled_and_a_seed_repeats_its_proposals():
    """Ten trials at epoch 1 and one at 5: below MIN_EPOCH (3), so every proposal is random,
    no TPE trace; and the same seed proposes the same points."""
    study = optuna.create_study(direction="maximize")
    for i in range(10):
        study.add_trial(trial_of((i + 0.5) / 10, [1 - abs((i + 0.5) / 10 - 0.2)]))
    study.add_trial(trial_of(0.9, [0.1] * 5))
    study.sampler = MultiFidelityTPE(samplers.tpe(0), 0, random_fraction=0.0)
    trial = study.ask({"x": X["x"]})
    study.tell(trial, state=TrialState.FAIL)
    assert not any(key.startswith("tpe:") for key in study.trials[-1].system_attrs)
    assert proposals(samplers.SAMPLERS["mf-tpe"](7)) == proposals(samplers.SAMPLERS["mf-tpe"](7))


def test_a_reseeded_sampler_still_models_as_before():
    """reseed_rng (Optuna calls it when one sampler serves several threads) gives the random
    share and TPE new seeds: the sampler still models the study where the values point."""
    sampler = MultiFidelityTPE(samplers.tpe(0), 0, random_fraction=0.0)
    sampler.reseed_rng()
    assert sum(abs(x - 0.2) < 0.15 for x in proposals(sampler)) >= 20
