"""Learning-curve extrapolation (--pruner lce, sha-lce, hyperband-lce): after each epoch, the
trial's curve so far is fitted by a small ensemble of parametric curve families and its value
at the last epoch predicted, with an uncertainty; the trial stops once the probability that it
ends better than the study's best is below a threshold (Domhan, Springenberg and Hutter, IJCAI
2015; the LC-PFN paper's stopping rule, Adriaensen et al., NeurIPS 2023). Optuna's pruners
only compare a trial with the others at the same step; this one asks where its own curve goes.

The families are the saturating ones of Domhan et al. that are linear in two parameters once a
shape parameter is fixed: a power law c - a * x^-k, an exponential c - a * exp(-k x) and a
log-power c - a * log(x + 1)^-k, each over a grid of shapes k, plus the log-linear c + a *
log x. Every (family, shape) is an ordinary least-squares fit, all of them in a few numpy
calls; each family speaks at its best shape, with its prediction interval (its residual noise,
widened the further it extrapolates), and the forecast is their equal mixture, widened by a
calibration factor measured on LCBench's development tasks (CALIBRATION). Why not scipy's
curve_fit per family, or the paper's MCMC: a trial asks after every epoch, hundreds of
thousands of times in a replayed table; this costs about a hundred microseconds a call,
curve_fit's iterations milliseconds."""

import dataclasses
import math

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

MIN_EPOCHS = 3  # two parameters and a residual: the first fit with any noise estimate
DEFAULT_THRESHOLD = 0.05  # the LC-PFN paper's most-used stopping threshold
_SHAPES = np.geomspace(0.05, 3.0, 12)  # the shape parameter k's grid, for each family
_NOISE_FLOOR = 1e-4  # a perfectly smooth curve still carries this much noise (std)
# The ensemble's own uncertainty is overconfident: on 1,600 random LCBench curves of the 8
# development tasks, the last value was above its forecast by more than 1.645 of its standard
# deviations (5% for a calibrated forecast) 14% of the time from 3 to 25 epochs seen; with
# the deviation widened 4 times, 6%, 5%, 4% and 1% from 3, 5, 10 and 25 epochs
# (tests/test_extrapolation.py checks the tail on other curves)
CALIBRATION = 4.0


@dataclasses.dataclass(frozen=True)
class Forecast:
    """The predicted value at the horizon: mean and standard deviation."""

    mean: float
    std: float

    def chance_above(self, value: float) -> float:
        """P(the value at the horizon > `value`), the forecast taken as Gaussian."""
        return 0.5 * math.erfc((value - self.mean) / (self.std * math.sqrt(2)))


def _bases(x: np.ndarray, horizon: int) -> list[np.ndarray]:
    """Each family's bases at epochs x, one row per shape k: y = c + a * basis. The
    exponential's rate is in units of the horizon, so that its grid suits any --epochs."""
    k = _SHAPES[:, None]
    return [
        -(x[None, :] ** -k),
        -np.exp(-5 * k * x[None, :] / horizon),
        -(np.log(x[None, :] + 1) ** -k),
        np.log(x)[None, :],
    ]  # fmt: skip


def _fit(seen: np.ndarray, ahead: np.ndarray, curve: np.ndarray) -> tuple[float, float]:
    """One family's least-squares fit at its best shape: the prediction at the horizon and the
    variance of that prediction (the line's prediction interval, widening with the distance
    from the epochs seen)."""
    n = len(curve)
    mean_b = seen.mean(axis=1)
    centred = seen - mean_b[:, None]
    spread = np.maximum((centred**2).sum(axis=1), 1e-12)
    slope = centred @ (curve - curve.mean()) / spread
    intercept = curve.mean() - slope * mean_b
    sse = ((intercept[:, None] + slope[:, None] * seen - curve) ** 2).sum(axis=1)
    best = int(np.argmin(sse))
    noise = max(sse[best] / (n - 2), _NOISE_FLOOR**2)
    variance = noise * (1 + 1 / n + (ahead[best] - mean_b[best]) ** 2 / spread[best])
    return float(intercept[best] + slope[best] * ahead[best]), float(variance)


def forecast(epochs: np.ndarray, curve: np.ndarray, horizon: int) -> Forecast:
    """The value at epoch `horizon` of a curve that gave `curve` at `epochs` (from 1): the
    families' fits weighted equally (one family's near-perfect fit of a smooth curve says
    little about where it goes), the spread among them part of the uncertainty, which is then
    widened by CALIBRATION."""
    n = len(curve)
    fits = [
        _fit(bases[:, :n], bases[:, -1], curve)
        for bases in _bases(np.append(epochs, horizon).astype(float), horizon)
    ]
    predicted = np.array([mean for mean, _ in fits])
    mean = float(predicted.mean())
    variance = float(np.mean([v for _, v in fits]) + ((predicted - mean) ** 2).mean())
    return Forecast(mean, CALIBRATION * math.sqrt(variance))


class CurveExtrapolation(optuna.pruners.BasePruner):
    """Stops a trial when its extrapolated last value is unlikely (below `threshold`) to beat
    the best finished trial, or when `inner` (a rung-based pruner, or none) stops it."""

    def __init__(
        self,
        max_epochs: int,
        inner: optuna.pruners.BasePruner | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        min_epochs: int = MIN_EPOCHS,
    ):
        self.max_epochs, self.inner = max_epochs, inner
        self.threshold, self.min_epochs = threshold, min_epochs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if self.inner is not None and self.inner.prune(study, trial):
            return True
        return self.hopeless(study, trial)

    def hopeless(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        steps = sorted(trial.intermediate_values)
        if len(steps) < self.min_epochs or steps[-1] >= self.max_epochs:
            return False
        try:
            best = study.best_value
        except ValueError:  # no trial has finished: nothing to beat yet
            return False
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        curve = sign * np.array([trial.intermediate_values[s] for s in steps], dtype=float)
        if not np.isfinite(curve).all():
            return False  # a diverged epoch is the rung pruners' and the trainer's to judge
        chance = forecast(np.array(steps), curve, self.max_epochs).chance_above(sign * best)
        return chance < self.threshold
