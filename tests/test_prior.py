"""--warm-start-by prior (prior.py): PriorBand's ensemble sampling on Optuna's sampler interface,
checked against scipy's truncated normal, hand-worked scores, and the draws of real Optuna
studies (in memory) whose trials are written with Optuna's create_trial."""

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from scipy import stats

from search.tuning.strategies import prior

X = FloatDistribution(0.0, 1.0)


@pytest.mark.parametrize(("x", "center", "scale"), [
    (0.5, 0.5, 0.25), (0.0, 0.9, 0.25), (1.0, 0.1, 0.125), (0.3, 0.95, 0.5), (0.7, 0.7, 0.05),
])  # fmt: skip
def test_the_density_is_scipy_s_truncated_normal_on_the_unit_range(x, center, scale):
    a, b = (0 - center) / scale, (1 - center) / scale
    expected = stats.truncnorm.pdf(x, a, b, loc=center, scale=scale)
    assert prior.truncated_normal_pdf(x, center, scale) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("value", "distribution", "place"), [
    (0.3, FloatDistribution(0.1, 0.5), 0.5),
    (1e-3, FloatDistribution(1e-4, 1e-2, log=True), 0.5),
    (16, IntDistribution(1, 31), 0.5),
    (0.4, FloatDistribution(0.0, 0.9, step=0.1), 4 / 9),
    (2, IntDistribution(2, 2), 0.5),
])  # fmt: skip
def test_a_number_s_unit_place_and_back(value, distribution, place):
    assert prior.to_unit(value, distribution) == pytest.approx(place)
    assert prior.from_unit(place, distribution) == pytest.approx(value)
    assert type(prior.from_unit(place, distribution)) is type(value)


def test_a_place_off_the_grid_lands_on_it_and_inside_the_range():
    assert prior.from_unit(0.47, FloatDistribution(0.0, 0.9, step=0.1)) == pytest.approx(0.4)
    assert prior.from_unit(1.3, IntDistribution(1, 31)) == 31
    assert prior.from_unit(-0.2, FloatDistribution(1e-4, 1e-2, log=True)) == pytest.approx(1e-4)


def trial(number, x, curve, state=TrialState.PRUNED, width=None):
    params, distributions = {"x": x}, {"x": X}
    if width is not None:
        params["width"], distributions["width"] = width, CategoricalDistribution([4, 16, 64])
    made = optuna.trial.create_trial(
        params=params, distributions=distributions, state=state,
        value=curve[max(curve)] if state == TrialState.COMPLETE else None,
        intermediate_values=curve,
    )  # fmt: skip
    made.number = number
    return made


def test_the_prior_takes_every_draw_until_a_trial_has_finished():
    trials = [trial(n, 0.1 * n, {1: 0.1 * n}) for n in range(6)]
    assert prior.prior_share(trials, [{"x": 0.9}], None, maximize=True) == 1.0


def test_the_split_is_the_rank_weighted_densities_of_the_highest_rung_s_top_third():
    """Epoch 3 is the highest that 3 trials reached (4 did: the top third of 4 is at least 3,
    so trials 5, 4 and 3 there, weighted 3, 2, 1); the prior at 0.9, the incumbent (trial 5)
    at 0.8. Worked out with scipy's truncated normal."""
    trials = [trial(n, 0.1 * n + 0.3, {1: 0.1, 3: 0.1 * n}) for n in range(6)]
    trials.append(trial(6, 0.2, {1: 0.9}))  # best at epoch 1, not at the highest rung
    incumbent = trial(7, 0.8, {5: 0.99}, state=TrialState.COMPLETE)

    def pdf(x, center, scale):
        return stats.truncnorm.pdf(x, -center / scale, (1 - center) / scale, center, scale)

    top = [(3, 0.8), (2, 0.7), (1, 0.6)]  # (weight, x) of trials 5, 4, 3
    prior_score = sum(w * pdf(x, 0.9, 0.25) for w, x in top)
    incumbent_score = sum(w * pdf(x, 0.8, 0.25) for w, x in top)
    share = prior.prior_share(trials + [incumbent], [{"x": 0.9}], incumbent, maximize=True)
    assert share == pytest.approx(prior_score / (prior_score + incumbent_score))
    # minimizing, the top are the lowest at epoch 3: trials 0, 1, 2 at 0.3, 0.4, 0.5
    low = [(3, 0.3), (2, 0.4), (1, 0.5)]
    expected = sum(w * pdf(x, 0.9, 0.25) for w, x in low) / sum(
        w * (pdf(x, 0.9, 0.25) + pdf(x, 0.8, 0.25)) for w, x in low
    )
    assert prior.prior_share(trials, [{"x": 0.9}], incumbent, maximize=False) == pytest.approx(
        expected
    )


def test_several_prior_configs_score_as_their_mixture_and_choices_by_weight():
    trials = [trial(n, 0.5, {2: 0.5 + n}, width=16) for n in range(3)]
    incumbent = trial(9, 0.5, {2: 9.0}, state=TrialState.COMPLETE, width=64)
    configs = [{"x": 0.5, "width": 16}, {"x": 0.1, "width": 4}]
    prior_density = np.mean([
        prior.truncated_normal_pdf(0.5, 0.5, 0.25) * 4 / 6,
        prior.truncated_normal_pdf(0.5, 0.1, 0.25) * 1 / 6,
    ])  # fmt: skip
    incumbent_density = prior.truncated_normal_pdf(0.5, 0.5, 0.25) * 1 / 6
    share = prior.prior_share(trials, configs, incumbent, maximize=True)
    assert share == pytest.approx(prior_density / (prior_density + incumbent_density))


def study_of(configs, seed=0, trials=()):
    study = optuna.create_study(direction="maximize", storage=optuna.storages.InMemoryStorage())
    for made in trials:
        study.add_trial(made)
    study.sampler = prior.PriorSampler(optuna.samplers.RandomSampler(seed=seed), configs, seed)
    return study


def test_half_the_trials_are_drawn_near_the_prior_the_rest_by_the_sampler():
    """Random search on [0, 1] with a prior at 0.9: the mean is half uniform's and half the
    truncated normal's (scipy's mean), over 2,000 trials."""
    study = study_of([{"x": 0.9}])
    xs = [study.ask().suggest_float("x", 0.0, 1.0) for _ in range(2000)]
    near = stats.truncnorm.mean(-0.9 / 0.25, 0.1 / 0.25, loc=0.9, scale=0.25)
    assert np.mean(xs) == pytest.approx(0.5 * 0.5 + 0.5 * near, abs=0.015)
    assert np.mean(xs) > 0.6  # a plain random sampler's mean is 0.5


def test_once_the_best_trials_sit_far_from_the_prior_draws_follow_the_incumbent():
    """The prior at 0.05; every trial at the highest rung and the incumbent near 0.95: the
    prior's share falls to almost nothing, and the non-sampler half mutates the incumbent
    (half its draws keep 0.95 exactly, PriorBand's mutation rate)."""
    made = [trial(n, 0.95, {3: 0.5 + 0.01 * n}) for n in range(6)]
    made.append(trial(6, 0.95, {5: 0.99}, state=TrialState.COMPLETE))
    share = prior.prior_share(made, [{"x": 0.05}], made[-1], maximize=True)
    assert share < 0.01
    study = study_of([{"x": 0.05}], trials=made)
    xs = np.array([study.ask().suggest_float("x", 0.0, 1.0) for _ in range(1000)])
    assert 0.2 < np.mean(xs == 0.95) < 0.3  # half the draws, half of those unmutated
    assert np.mean(xs < 0.2) < 0.25  # the uniform half's 20%, hardly any from the prior


def test_a_parameter_the_center_did_not_set_or_cannot_take_is_the_sampler_s():
    study = study_of([{"x": 0.9, "width": 128}])
    widths = [study.ask().suggest_categorical("width", [4, 16, 64]) for _ in range(300)]
    assert set(widths) == {4, 16, 64}  # 128 is not a choice here: the sampler's, uniformly
    assert 0.25 < widths.count(64) / 300 < 0.42
    other = study_of([{"x": 0.9}], seed=1)
    ys = [other.ask().suggest_float("y", 0.0, 1.0) for _ in range(1000)]
    assert np.mean(ys) == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("sampler", [
    lambda: optuna.samplers.RandomSampler(seed=3),
    lambda: optuna.samplers.QMCSampler(seed=3, warn_independent_sampling=False),
])  # fmt: skip
def test_without_configs_it_is_the_sampler_draw_for_draw(sampler):
    """Random search, and QMC, which samples jointly after its first trial."""
    draws = []
    for study in (optuna.create_study(sampler=sampler()),
                  optuna.create_study(sampler=prior.PriorSampler(sampler(), [], 3))):  # fmt: skip
        points = []
        for _ in range(20):
            asked = study.ask()
            points.append((asked.suggest_float("x", 0, 1), asked.suggest_float("y", 0, 1)))
            study.tell(asked, 0.0)
        draws.append(points)
    assert draws[0] == draws[1]


@pytest.mark.parametrize("end", [0.0, 1.0])
def test_a_prior_at_either_end_of_the_range_is_drawn_near(end):
    study = study_of([{"x": end}])
    xs = [study.ask().suggest_float("x", 0.0, 1.0) for _ in range(1000)]
    a, b = (0 - end) / 0.25, (1 - end) / 0.25
    near = stats.truncnorm.mean(a, b, loc=end, scale=0.25)
    assert np.mean(xs) == pytest.approx(0.25 + 0.5 * near, abs=0.03)


def test_a_prior_choice_is_drawn_four_times_as_often_as_each_other_half_the_time():
    study = study_of([{"width": 16}])
    widths = [study.ask().suggest_categorical("width", [4, 16, 64]) for _ in range(1500)]
    assert widths.count(16) / 1500 == pytest.approx(0.5 * 4 / 6 + 0.5 / 3, abs=0.035)


def test_a_mutated_choice_is_any_choice_half_the_time():
    rng = np.random.default_rng(0)
    widths = [prior.mutated(rng, 16, CategoricalDistribution([4, 16, 64])) for _ in range(3000)]
    assert widths.count(4) / 3000 == pytest.approx(0.5 / 3, abs=0.03)
    assert widths.count(16) / 3000 == pytest.approx(0.5 + 0.5 / 3, abs=0.03)


def test_a_choice_keeps_the_prior_s_value_four_times_as_often_as_each_other():
    rng = np.random.default_rng(0)
    widths = [prior.near(rng, 16, CategoricalDistribution([4, 16, 64])) for _ in range(6000)]
    assert widths.count(16) / 6000 == pytest.approx(4 / 6, abs=0.02)
    assert widths.count(4) / 6000 == pytest.approx(1 / 6, abs=0.02)


def test_a_mutation_moves_half_the_parameters_by_a_quarter_of_the_range():
    rng = np.random.default_rng(0)
    moved = [prior.mutated(rng, 0.5, X) for _ in range(4000)]
    changed = [m - 0.5 for m in moved if m != 0.5]
    assert len(changed) / 4000 == pytest.approx(0.5, abs=0.03)
    assert np.std(changed) == pytest.approx(
        0.25 * 0.95, rel=0.08
    )  # clipped at the ends: a bit less
    assert all(0 <= m <= 1 for m in moved)


def test_with_several_objectives_the_prior_keeps_its_whole_share():
    """Accuracy first, a size second (minimized): no curve is reported to Optuna, so no rung
    can score the prior, and half the draws stay near it while trials finish."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.sampler = prior.PriorSampler(optuna.samplers.RandomSampler(seed=0), [{"x": 0.9}], 0)
    xs = []
    for _ in range(400):
        asked = study.ask()
        xs.append(asked.suggest_float("x", 0.0, 1.0))
        study.tell(asked, [xs[-1], 1 - xs[-1]])
    near = stats.truncnorm.mean(-0.9 / 0.25, 0.1 / 0.25, loc=0.9, scale=0.25)
    assert np.mean(xs) == pytest.approx(0.5 * 0.5 + 0.5 * near, abs=0.03)


def test_the_highest_rung_is_the_highest_epoch_three_trials_reached_ranked_by_value_there():
    """Two trials reached epoch 9 (too few), four epoch 3, three only epoch 1: the rung is
    epoch 3, its trials ranked by their value there, not by their number."""
    made = [trial(0, 0.1, {1: 0.9, 3: 0.2, 9: 0.9}), trial(1, 0.2, {1: 0.1, 3: 0.8, 9: 0.1})]
    made += [trial(2, 0.3, {1: 0.5, 3: 0.5}), trial(3, 0.4, {1: 0.5, 3: 0.6})]
    made += [trial(n, 0.5, {1: 0.99}) for n in (4, 5, 6)]
    top = prior.top_of_highest_rung(made, maximize=True)
    assert [t.number for t in top] == [1, 3, 2]  # 0.8, 0.6, 0.5 at epoch 3
    assert [t.number for t in prior.top_of_highest_rung(made, maximize=False)] == [0, 2, 3]
    many = [trial(n, 0.5, {3: n / 10}) for n in range(10)]  # the top third of ten, at least 3
    assert [t.number for t in prior.top_of_highest_rung(many, maximize=True)] == [9, 8, 7]
    assert prior.top_of_highest_rung(made[:2], maximize=True) == []


def test_a_parameter_the_prior_config_lacks_scores_nothing_and_choices_score_first_too():
    """Top trials that set a choice before a number, and a number no prior config sets: the
    prior's density is the choice's weight times the number's, the extra parameter left out."""
    width = CategoricalDistribution([4, 16, 64])
    made = []
    for n in range(3):
        made.append(optuna.trial.create_trial(
            params={"width": 16, "x": 0.5, "y": 0.3},
            distributions={"width": width, "x": X, "y": X},
            state=TrialState.PRUNED, intermediate_values={2: 1.0 + n},
        ))  # fmt: skip
    incumbent = trial(9, 0.5, {2: 9.0}, state=TrialState.COMPLETE)  # sets x alone
    share = prior.prior_share(made, [{"width": 16, "x": 0.1}], incumbent, maximize=True)
    prior_density = 4 / 6 * prior.truncated_normal_pdf(0.5, 0.1, 0.25)
    incumbent_density = prior.truncated_normal_pdf(0.5, 0.5, 0.25)
    assert share == pytest.approx(prior_density / (prior_density + incumbent_density))


def test_a_prior_value_outside_this_range_is_the_sampler_s_to_draw():
    study = study_of([{"x": 5.0}])  # a range that depends on another parameter, say
    xs = [study.ask().suggest_float("x", 0.0, 1.0) for _ in range(600)]
    assert np.mean(xs) == pytest.approx(0.5, abs=0.03)


def test_the_same_seed_draws_the_same_trials_and_a_reseed_does_not():
    first, second = study_of([{"x": 0.9}], seed=4), study_of([{"x": 0.9}], seed=4)
    draws = [[s.ask().suggest_float("x", 0.0, 1.0) for _ in range(40)] for s in (first, second)]
    assert draws[0] == draws[1]
    first.sampler.reseed_rng()
    assert [first.ask().suggest_float("x", 0.0, 1.0) for _ in range(40)] != [
        second.ask().suggest_float("x", 0.0, 1.0) for _ in range(40)
    ]


def test_a_sampler_that_samples_jointly_is_bypassed_for_a_prior_draw():
    """Under QMC (which samples every parameter of the space at once after the first trial),
    the prior's draws still come from the prior: half the trials near (0.9, 0.9)."""
    study = optuna.create_study(sampler=prior.PriorSampler(
        optuna.samplers.QMCSampler(seed=0, warn_independent_sampling=False), [{"x": 0.9, "y": 0.9}], 0
    ))  # fmt: skip
    points = []
    for _ in range(300):
        asked = study.ask()
        points.append((asked.suggest_float("x", 0, 1), asked.suggest_float("y", 0, 1)))
        study.tell(asked, 0.0)
    near = stats.truncnorm.mean(-0.9 / 0.25, 0.1 / 0.25, loc=0.9, scale=0.25)
    assert np.mean(points, axis=0) == pytest.approx([0.25 + 0.5 * near] * 2, abs=0.04)
    assert study.sampler._draws == {}  # nothing kept of a finished trial


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_under_tpe_a_parameter_the_prior_lacks_is_tpe_s_and_the_incumbent_is_the_best(direction):
    """TPE as the sampler (it reads the study to draw): a prior config that sets x alone,
    and at 5.0 outside the range, leaves y and x to TPE; once trials finish, the mutated
    incumbent is the best of them, not the last nor the first."""
    sign = 1 if direction == "maximize" else -1
    study = optuna.create_study(direction=direction, sampler=prior.PriorSampler(
        optuna.samplers.TPESampler(seed=0, n_startup_trials=5), [{"x": 0.05}, {"x": 5.0}], 0
    ))  # fmt: skip
    study.add_trial(trial(0, 0.5, {1: sign * 0.1}, state=TrialState.COMPLETE))
    study.add_trial(trial(1, 0.95, {1: sign * 0.9}, state=TrialState.COMPLETE))  # the best
    study.add_trial(trial(2, 0.3, {1: sign * 0.2}, state=TrialState.COMPLETE))
    for n in range(3, 9):  # the highest rung's top sits at the incumbent
        study.add_trial(trial(n, 0.95, {1: sign * (0.5 + 0.01 * n)}))
    xs = []
    for _ in range(200):
        asked = study.ask()
        xs.append(asked.suggest_float("x", 0.0, 1.0))
        asked.suggest_float("y", 0.0, 1.0)
        study.tell(asked, state=TrialState.FAIL)
    assert 0.2 < np.mean(np.array(xs) == 0.95) < 0.3  # the incumbent's unmutated half


def test_the_product_s_own_samplers_run_under_the_prior():
    """mf-tpe (the default) and tpe (grouped multivariate TPE, whose sample_relative asserts
    that it inferred the trial's space itself): a prior draw never calls them jointly."""
    from search.tuning.strategies.samplers import SAMPLERS

    for name in ("mf-tpe", "tpe"):
        study = optuna.create_study(direction="maximize", sampler=prior.PriorSampler(
            SAMPLERS[name](0), [{"x": 0.9, "y": 0.9}], 0
        ))  # fmt: skip
        for _ in range(40):
            asked = study.ask()
            x, y = asked.suggest_float("x", 0, 1), asked.suggest_float("y", 0, 1)
            for epoch in (1, 2, 3):
                asked.report(x * y * epoch / 3, epoch)
            study.tell(asked, x * y)
        assert len(study.trials) == 40
