"""LCBench (Zimmer, Lindauer and Hutter, "Auto-PyTorch Tabular", TPAMI 2021: MLPs on 35
OpenML tasks, each configuration's learning curve over about 50 epochs) through YAHPO Gym's
surrogate of it (v1.0.2, Apache-2.0, vendored in lcbench/ with its license): a configuration's
whole curve, validation accuracy and cumulative seconds, in one onnxruntime call.

Epoch 1 of the surrogate is left out: YAHPO Gym's FAQ describes LCBench's first logged epoch as
the network just initialized and recommends epochs 2 to 51 as the fidelity range. A trial's
epoch k is the surrogate's epoch k + 1, and takes the seconds between the two (its cumulative
time's difference), so a full-length trial is EPOCHS = 50 epochs."""

import functools
import json
from pathlib import Path

from registry import UsageError
from search.bench.replay.figures import Reference
from search.bench.replay.simulator import Curve

FOLDER = Path(__file__).with_name("lcbench")
EPOCHS = 50  # the surrogate's epochs 2 to 51
# The tasks defaults are chosen on (issue 42); the others are held out, to check them on
DEVELOPMENT_TASKS = ("3945", "7593", "34539", "126025", "126026", "146212", "167104", "167149")
# The model's inputs beside the task, in its order (YAHPO Gym's lcbench, README of lcbench/)
INPUTS = ("epoch", "batch_size", "learning_rate", "momentum", "weight_decay", "num_layers",
          "max_units", "max_dropout")  # fmt: skip
TIME, VAL_ACCURACY = 0, 1  # the model's outputs we read: cumulative seconds, percent
REFERENCE_SAMPLE = 2000  # random configurations a task's regret is scaled by


@functools.cache
def config_space() -> dict:
    return json.loads((FOLDER / "config_space.json").read_text())


def tasks() -> list[str]:
    """The 34 tasks the surrogate covers (config_space.json's; encoding.json names 35)."""
    task = next(h for h in config_space()["hyperparameters"] if h["name"] == "OpenML_task_id")
    return list(task["choices"])


def parameters() -> list[dict]:
    """The searched hyperparameters: name, type, bounds and scale."""
    return [h for h in config_space()["hyperparameters"]
            if h["name"] not in ("OpenML_task_id", "epoch")]  # fmt: skip


def suggest(trial) -> dict[str, float]:
    """A configuration, suggested on an Optuna trial (define-by-run, as a space does)."""
    chosen = {}
    for hp in parameters():
        suggest_number = trial.suggest_int if hp["type"] == "uniform_int" else trial.suggest_float
        chosen[hp["name"]] = suggest_number(hp["name"], hp["lower"], hp["upper"], log=hp["log"])
    return chosen


@functools.cache
def _session():
    """The surrogate, loaded once a process (onnxruntime: the lcbench extra)."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(
            "--benchmark lcbench needs onnxruntime: pip install -e '.[lcbench]'"
        ) from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # many small calls: threads cost more than they give
    return onnxruntime.InferenceSession(
        str(FOLDER / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )


@functools.cache
def _codes() -> dict[str, int]:
    return json.loads((FOLDER / "encoding.json").read_text())["OpenML_task_id"]


class Surrogate:
    """One task's curves, each configuration's computed once: a task of the replay (as
    recorded.Table is), the study's space and settings beside its curves."""

    space, epochs, fixed_params = "lcbench", EPOCHS, {}
    suggest = staticmethod(suggest)

    def __init__(self, task: str):
        if task not in tasks():
            raise UsageError(f"--tasks: LCBench has no task {task!r}; its tasks: "
                             f"{', '.join(tasks())}")  # fmt: skip
        self.task, self.code = task, _codes()[task]
        self.dataset = task
        self._curves: dict[tuple, Curve] = {}

    def reference(self) -> Reference:
        """The task's scale: a seeded random sample of configurations trained to the end."""
        import optuna

        sampler = optuna.samplers.RandomSampler(seed=0)
        study = optuna.create_study(sampler=sampler, storage=optuna.storages.InMemoryStorage())
        configs = [suggest(study.ask()) for _ in range(REFERENCE_SAMPLE)]
        finals = sorted(curve.val_accuracy[-1] for curve in self.curves(configs))
        return Reference(best=finals[-1], median=finals[len(finals) // 2])

    def distances(self) -> list[float]:
        """How far each configuration looked up was from the one whose curve it got: the
        surrogate predicts every configuration's own curve."""
        return []

    def curve(self, params: dict[str, float]) -> Curve:
        key = tuple(params[name] for name in INPUTS[1:])
        if key not in self._curves:
            self._curves[key] = self._computed([key])[0]
        return self._curves[key]

    def curves(self, many: list[dict[str, float]]) -> list[Curve]:
        """Many configurations' curves in one call (a reference sample)."""
        return self._computed([tuple(p[name] for name in INPUTS[1:]) for p in many])

    def _computed(self, keys: list[tuple]) -> list[Curve]:
        import numpy as np

        epochs = np.arange(1, EPOCHS + 2, dtype=np.float32)  # the surrogate's 1 to 51
        rows = np.array([[epoch, *key] for key in keys for epoch in epochs], dtype=np.float32)
        codes = np.full((len(rows), 1), self.code, dtype=np.int32)
        out = _session().run(None, {"x_cat": codes, "x_cont": rows})[0]
        found = []
        for start in range(0, len(rows), EPOCHS + 1):
            block = out[start : start + EPOCHS + 1]
            seconds = np.maximum(np.diff(block[:, TIME]), 1e-3)  # a surrogate's wobble
            found.append(Curve(tuple((block[1:, VAL_ACCURACY] / 100).tolist()),
                               tuple(seconds.tolist())))  # fmt: skip
        return found
