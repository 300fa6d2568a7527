"""Creating, resuming and finding studies. A study records how it is to be run (space, dataset,
budget, target, sampler, pruner, seed) in its user attributes, so that any worker on any host
runs it the same way from its name and storage URL alone."""

import dataclasses
import uuid
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.study import StudyDirection

from registry import RunFailure, UsageError
from search.tuning.records import keys, ledger
from search.tuning.records import settings as study_settings
from search.tuning.records.settings import (
    BORN,
    FIELDS,
    FIXED,
    LATER,
    StudySettings,
    as_flag,
    upgraded,
)
from search.tuning.store import storage
from search.tuning.strategies import strategy, transfer


def checked(values: dict[str, Any], source: str = "") -> StudySettings:
    """StudySettings from plain values, checked as settings.checked does, and as the strategy
    they name needs (strategy.check)."""
    return study_settings.checked(values, source, also=(strategy.check,))


def names(storage: RDBStorage) -> list[str]:
    """The storage's study names, not their summaries, which read every study's best trial:
    half a second on the test PostgreSQL's 6 studies, at the start of search.run, export and
    status."""
    return optuna.get_all_study_names(storage)


def deleted(found: optuna.Study) -> bool:
    """Whether `found` is no longer in its storage (optuna delete-study while workers ran)."""
    try:
        found._storage.get_study_id_from_name(found.study_name)
    except KeyError:
        return True
    return False


def load(storage: RDBStorage, name: str) -> optuna.Study:
    """An existing study, or a UsageError that lists the ones there are."""
    existing = names(storage)
    if name not in existing:
        listed = ", ".join(existing) if existing else "none"
        raise UsageError(f"no study named '{name}' in this storage (studies there: {listed})")
    return optuna.load_study(study_name=name, storage=storage)


def settings_of(found: optuna.Study) -> StudySettings:
    """What search.run recorded on the study; a worker runs exactly this. A value that an
    older version recorded and this one refuses is one line that names it."""
    recorded = upgraded({**LATER, **found.user_attrs})
    missing = [key for key in FIELDS if key not in recorded]
    if missing:
        raise UsageError(
            f"study '{found.study_name}' was not created by search.run (it lacks "
            f"{', '.join(missing)}); start it with python -m search.run first"
        )
    return checked(
        {key: recorded[key] for key in FIELDS},
        source=f"study '{found.study_name}' holds a setting this version cannot run (start "
        "another with --study NAME): ",
    )


def create_or_resume(storage: RDBStorage, name: str, wanted: StudySettings) -> optuna.Study:
    """Create the study, or resume it if search.run created it with the same fixed settings;
    either way record the settings (already checked) for the workers, with those born with
    the study (its checkpoint key, drawn when it is created; its warm start). Of two commands
    that create the same study at once, the second fails with one line: it would have
    replaced the first's settings."""
    directions = wanted.directions
    if name in names(storage):
        existing = optuna.load_study(study_name=name, storage=storage)
        lacking = [key for key in FIELDS
                   if key not in {**LATER, **existing.user_attrs}]  # fmt: skip
        if lacking:
            raise UsageError(
                f"study '{name}' was not created by search.run (it lacks "
                f"{', '.join(lacking)}); leave it as it is and choose another --study NAME"
            )
        if existing.directions != [StudyDirection[d.upper()] for d in directions]:
            raise UsageError(
                f"study '{name}' has other objectives than --objectives "
                f"{','.join(wanted.objectives)}; "
                "resume it with the same flags or start another with --study NAME"
            )
        recorded = upgraded({key: existing.user_attrs.get(key, LATER.get(key))
                             for key in FIXED})  # fmt: skip
        if recorded != wanted.fixed():
            flags = " ".join(as_flag(key, value) for key, value in recorded.items() if value)
            raise UsageError(
                f"study '{name}' was created with {flags}; resume it with the same flags "
                "or start another with --study NAME"
            )
        created = existing
        born = {setting: existing.user_attrs.get(setting, LATER[setting]) for setting in BORN}
        if wanted.warm_start_from not in ("", born["warm_start_from"]):
            earlier = born["warm_start_from"]
            raise UsageError(
                f"study '{name}' was created "
                + (f"from study '{earlier}'" if earlier else "without --warm-start-from")
                + "; a warm start applies when a study is created: start another with --study NAME"
            )
    else:
        try:
            created = optuna.create_study(storage=storage, study_name=name, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:
            raise RunFailure(
                f"study '{name}' was created by another command just now; run this one again "
                "to resume it (its settings are checked against that one's then)"
            ) from None
        born = {"checkpoint_key": uuid.uuid4().hex[:8]}
    recorded = dataclasses.replace(wanted, **born)
    for setting, value in recorded.to_attrs().items():
        created.set_user_attr(setting, value)
    created.set_metric_names(wanted.metric_names)
    return created


def open_for_worker(
    storage: RDBStorage, name: str, recorded: StudySettings, slot: int
) -> optuna.Study:
    """The study with the strategy it was started with (`recorded` is its settings)."""
    return strategy.attach(load(storage, name), recorded, slot)


def enqueue_warm_starts(found: optuna.Study, space: str) -> int:
    """Queue the space's known-good configs, each once per study (a resumed study that has
    run or queued one already skips it); how many were newly queued."""
    import spaces  # here: search.status and search.export read studies without the spaces

    starts = spaces.warm_starts(space)
    return ledger.enqueue_once(found, [(s.params, {keys.WARM_START: s.source}) for s in starts])


def warm_start(
    wanted: StudySettings, source_storage: str, opened, context, top: int = transfer.DEFAULT_TOP
) -> transfer.Transfer:
    """What a new study of `wanted` settings (its space's `context`) takes from the study it
    names (warm_start_from) in `source_storage`: `opened` where that is the new study's own
    storage, else opened here, read-only. One line, before anything is created, where the
    source is missing, was not made by search.run, searched another space or finished no
    trial."""
    from spaces import describe  # here: search.status and search.export need no spaces

    source_name = wanted.warm_start_from

    def read(found_in) -> transfer.Transfer:
        source = load(found_in, source_name)
        earlier = settings_of(source)
        transfer.check_source(earlier.space, source_name, wanted.space)
        ranges, _ = describe.parameter_ranges(wanted.space, context)
        return transfer.plan(source, wanted, ranges, top, pinned=earlier.fixed_params)

    if opened is not None:
        return read(opened)
    with storage.kept_open(source_storage, create=False, read_only=True) as found_in:
        return read(found_in)
