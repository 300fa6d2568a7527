"""A recorded table (`--benchmark recorded:PATH`, written by `--sections record`) as a task of
the replay: the study searches the space the table was recorded from (its --fix held), and a
configuration's curve is that of its nearest recorded neighbour, as Syne Tune's surrogate
blackboxes default to one nearest neighbour (KNeighborsRegressor, k=1).

Distance is measured in the space's normalized coordinates: a number's position in its range
(on the log scale where the space samples on it) and a category's sameness, each parameter
counting from 0 (equal) to 1 (as far apart as the range allows, or absent in one of the two:
a conditional parameter of another branch), the root mean square over the parameters the
table leaves free. Every lookup's distance is kept, for the rows to report: in a space of
dozens of parameters a few hundred configurations are far apart, and a strategy that models
fine differences sees them blurred to the nearest recorded curve."""

import json
import math
import statistics
from pathlib import Path

import numpy as np
import optuna
import scipy.stats

import spaces
from registry import UsageError
from search.bench.replay import recording
from search.bench.replay.figures import Reference
from search.bench.replay.simulator import Curve
from search.tuning.strategies import prior


class Table:
    """One recorded table: a task of the replay."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        settings, rows = recording.read_table(self.folder)
        self.space, self.dataset = settings["space"], settings["dataset"]
        self.epochs, self.fixed_params = settings["epochs"], dict(settings["fixed_params"])
        self.task = self.folder.name
        self.context = recording.context_of(settings, 0)
        check_complete(self.folder, rows, self.epochs)
        self.rows = rows
        self.curves_of = [
            Curve(tuple(row.val_accuracy), tuple(row.seconds)) for row in rows
        ]  # fmt: skip
        free = {name: distribution for name, distribution in settings["ranges"].items()
                if name not in self.fixed_params}  # fmt: skip
        self.coordinates = Coordinates(free)
        self.recorded = self.coordinates.of([row.params for row in rows])
        self._nearest: dict[tuple, tuple[Curve, float]] = {}
        self._distances: list[float] = []

    def suggest(self, trial: optuna.Trial) -> dict:
        """A configuration, suggested by the table's space on the trial."""
        spaces.SPACES[self.space](trial, self.context)
        return dict(trial.params)

    def curve(self, params: dict) -> Curve:
        key = tuple(sorted(params.items()))
        if key not in self._nearest:
            distance = self.coordinates.distances(self.recorded, params)
            nearest = int(np.argmin(distance))
            self._nearest[key] = self.curves_of[nearest], float(distance[nearest])
        curve, distance = self._nearest[key]
        self._distances.append(distance)
        return curve

    def distances(self) -> list[float]:
        """Each lookup so far (a trial's start): how far its nearest recorded neighbour was."""
        return list(self._distances)

    def fidelity(self) -> dict[str, float]:
        """How well the table stands in for training, each recorded configuration left out in
        turn and looked up among the others: the median distance to its nearest one (how
        densely the table covers its space), and the rank correlation (Spearman) of that
        neighbour's last accuracy with its own (how much a lookup says of a configuration:
        near 0, the curve it gets is no likelier to be good than any other)."""
        nearest, own, neighbours = [], [], []
        for index, row in enumerate(self.rows):
            distance = self.coordinates.distances(self.recorded, row.params)
            distance[index] = math.inf
            other = int(np.argmin(distance))
            nearest.append(float(distance[other]))
            own.append(row.val_accuracy[-1])
            neighbours.append(self.rows[other].val_accuracy[-1])
        correlated = scipy.stats.spearmanr(own, neighbours).statistic if len(own) > 2 else math.nan
        return {"spread": statistics.median(nearest) if nearest else math.nan,
                "loo_spearman": float(correlated)}  # fmt: skip

    def reference(self) -> Reference:
        """The table's scale: its own configurations, trained to the end."""
        finals = sorted(row.val_accuracy[-1] for row in self.rows if not row.diverged)
        return Reference(best=finals[-1], median=finals[len(finals) // 2])


def check_complete(folder: Path, rows: list, epochs: int) -> None:
    """A table every configuration of which trained all its epochs, or diverged on the way:
    anything else (a table edited by hand, cut off mid-line) would replay as a trial that
    ended early without a reason."""
    if not [row for row in rows if not row.diverged]:
        raise UsageError(f"{folder}: no configuration in the table trained all its epochs")
    for row in rows:
        expected = len(row.val_accuracy) + (1 if row.diverged else 0)
        if len(row.seconds) != expected or (not row.diverged and len(row.val_accuracy) != epochs):
            raise UsageError(
                f"{folder}: configuration {row.number} has {len(row.val_accuracy)} of "
                f"{epochs} epochs and {len(row.seconds)} epoch times; record it again"
            )


class Coordinates:
    """Configurations as points of the unit cube, a parameter a coordinate (categories as
    indices, compared for sameness), from Optuna's distributions of the space's ranges."""

    def __init__(self, ranges: dict[str, dict]):
        self.names = sorted(ranges)
        self.ranges = {
            name: optuna.distributions.json_to_distribution(json.dumps(ranges[name]))
            for name in self.names
        }  # fmt: skip
        self.categorical = np.array([
            isinstance(self.ranges[name], optuna.distributions.CategoricalDistribution)
            for name in self.names
        ])  # fmt: skip

    def of(self, configs: list[dict]) -> np.ndarray:
        """A row per configuration; NaN where it lacks a parameter (another branch's)."""
        return np.array([[self.position(name, c.get(name, None), name in c)
                          for name in self.names] for c in configs], dtype=float).reshape(
            len(configs), len(self.names))  # fmt: skip

    def position(self, name: str, value, present: bool) -> float:
        if not present:
            return math.nan
        distribution = self.ranges[name]
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            return float(distribution.to_internal_repr(value))  # its index
        return prior.to_unit(value, distribution)

    def distances(self, points: np.ndarray, config: dict) -> np.ndarray:
        """Each point's distance to `config`, root mean square over the parameters."""
        query = self.of([config])[0]
        with np.errstate(invalid="ignore"):
            apart = np.where(self.categorical, (points != query).astype(float),
                             np.abs(points - query))  # fmt: skip
        absent_here, absent_there = np.isnan(query), np.isnan(points)
        apart = np.where(absent_here & absent_there, 0.0, apart)
        apart = np.where(absent_here ^ absent_there, 1.0, apart)
        return np.sqrt((apart**2).mean(axis=1)) if self.names else np.zeros(len(points))
