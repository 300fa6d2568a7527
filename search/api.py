"""The Python API, for notebooks and scripts: what the commands do, as functions that return
objects (an optuna.Study, a trained model and its metrics, predictions) instead of lines.
Mistakes raise registry.UsageError with the line the command would print.

    from search import api

    study = api.search("mlp", dataset="sample", epochs=2, trials=8)  # an optuna.Study
    study.trials_dataframe()  # one column per config field (user_attrs_config.*)
    trained = api.train(api.best_config(study), epochs=2, output_dir="runs/best")
    trained.metrics["test_accuracy"], trained.model
    checkpoint = api.load_checkpoint("runs/best/checkpoint.pt")
    api.predict(checkpoint, ["cat.png"], top=3)  # [[("cat", 0.61), ("dog", 0.2), ...]]
"""

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

import spaces
from search import run as run_command
from search.tuning import DEFAULT_STORAGE


def search(
    space: str,
    *,
    trials: int = 100,
    epochs: int = 20,
    dataset: str = "cifar10",
    storage: str = DEFAULT_STORAGE,
    study: str | None = None,
    quiet: bool = True,
    **options: Any,
) -> optuna.Study:
    """Start or resume a search as `search.run` does (every one of its flags is a keyword
    argument: sampler="random", workers_per_gpu=2, fix={"image_size": 0}, warm_start=True)
    and return the study, as the workers left it."""
    chosen = {"space": space, "trials": trials, "epochs": epochs, "dataset": dataset,
              "storage": storage, "study": study, "quiet": quiet, **options}  # fmt: skip
    spaces.import_user_module(chosen.get("space_module"))
    wanted, run_options = run_command.request(**chosen)
    shown = ", ".join([repr(space), *(f"{key}={value!r}" for key, value in chosen.items()
                                      if key != "space" and value is not None)])  # fmt: skip
    _, found = run_command.start(
        wanted, dataclasses.replace(run_options, command=f"search.api.search({shown})")
    )
    return found


def best_config(found: optuna.Study, trial: int | None = None):
    """The TrialConfig of the study's winner (the final selection's, or the best trial's), or
    of trial number `trial`: what `search.export` writes."""
    from search.tuning.results import selection

    chosen = selection.choose_trials(found, trial, None, False)[0]
    return selection.exported_config(found, chosen)[0]


def train(
    config: Any,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    device: str = "auto",
    data_dir: str | Path = "data",
):
    """Retrain a config (a TrialConfig, a dict of its fields, or a file that search.export
    wrote) on train+val as `search.train` does, writing the same files; returns
    retrain.Retrained: metrics (test accuracy, per-class accuracy, ...), the trained model,
    the history and the folder."""
    from registry import files
    from search.training import config as configs
    from search.training import data, retrain
    from search.training import device as devices

    provenance: dict[str, Any] = {}
    if isinstance(config, str | Path):
        config, provenance = configs.read_file(Path(config))
    elif isinstance(config, Mapping):
        config = configs.from_dict(config)
    overrides = {
        key: value for key, value in (("epochs", epochs), ("seed", seed)) if value is not None
    }
    config = config.replace(**overrides)
    chosen = Path(output_dir) if output_dir else None
    folder = retrain.output_folder(chosen, Path("runs") / config.model, overwrite)
    with files.owned(folder, "search.api.train"):
        retrain.check_outputs(folder, [config.init_from] if config.init_from else [], overwrite)
        dataset = data.load(config.dataset, Path(data_dir), classes=config.classes)
        return retrain.retrain(config, dataset, devices.resolve(device), folder, provenance)


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """A checkpoint of search.train, ready to predict with (checkpoint.Checkpoint)."""
    from search.training import checkpoint
    from search.training import device as devices

    return checkpoint.load(Path(path), devices.resolve(device))


def predict(loaded, images: Sequence[str | Path], top: int = 1) -> list[list[tuple[str, float]]]:
    """For each image file, its `top` classes with their probabilities, most likely first."""
    return loaded.classify([Path(image) for image in images], top)
