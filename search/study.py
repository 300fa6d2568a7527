"""Creating, resuming and finding studies; a study records the flags it was created with."""

import optuna
from optuna.storages import RDBStorage
from optuna.study import StudyDirection

from search import samplers
from search.errors import UsageError

METRIC_NAMES = ["val_accuracy"]


def names(storage: RDBStorage) -> list[str]:
    return [summary.study_name for summary in optuna.get_all_study_summaries(storage)]


def load(storage: RDBStorage, name: str) -> optuna.Study:
    """An existing study, or a UsageError that lists the ones there are."""
    existing = names(storage)
    if name not in existing:
        listed = ", ".join(existing) if existing else "none"
        raise UsageError(f"no study named '{name}' in this storage (studies there: {listed})")
    return optuna.load_study(study_name=name, storage=storage)


def create_or_resume(
    storage: RDBStorage,
    name: str,
    settings: dict[str, object],
    sampler: str,
    pruner: str,
    seed: int,
    max_epochs: int,
) -> optuna.Study:
    """Create the study, or resume it if it exists and was created with the same settings
    (space, dataset, budget): trials run under other settings would not be comparable."""
    previous_trials = 0
    if name in names(storage):
        existing = optuna.load_study(study_name=name, storage=storage)
        if existing.directions != [StudyDirection.MAXIMIZE]:
            raise UsageError(f"study '{name}' is not a single-objective maximising study")
        recorded = {key: existing.user_attrs.get(key, value) for key, value in settings.items()}
        if recorded != settings:
            flags = " ".join(
                f"--{key.replace('_', '-')} {value}" for key, value in recorded.items()
            )
            raise UsageError(
                f"study '{name}' was created with {flags}; resume it with the same flags "
                "or start another with --study NAME"
            )
        previous_trials = len(existing.trials)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        # A resumed study's sampler continues from a new seed, so it does not repeat itself.
        sampler=samplers.SAMPLERS[sampler](seed + previous_trials),
        pruner=samplers.PRUNERS[pruner](max_epochs),
        load_if_exists=True,
    )
    if not previous_trials:
        for key, value in settings.items():
            study.set_user_attr(key, value)
        study.set_metric_names(METRIC_NAMES)
    return study
