"""The record section (`search.bench --sections record`): learning curves of one of our spaces,
for the replay (`--benchmark recorded:PATH`, recorded.py). N configurations sampled at random
from the space (its --fix pins held) are trained to their full epochs by the trainer a search
runs, and each epoch's validation accuracy, validation loss and seconds are written down.

The table is a folder: settings.json (what was recorded, on which machine and software, and
every parameter's range) and curves.jsonl (one configuration a line). Configuration k is drawn
by a random sampler seeded by the seed and k alone, so a recording cut off (a session ends its
background jobs) resumes with the same command where it stopped; the table is rewritten
atomically after each configuration, so a kill never leaves half a line."""

import dataclasses
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import optuna

import spaces
from registry import UsageError, files, seed_plus
from search.bench.rows import Row
from search.training import config, trainer

SETTINGS, TABLE = "settings.json", "curves.jsonl"
# What must match for a recording to resume onto a table: anything else is another table
SAME = ("space", "dataset", "classes", "epochs", "fixed_params", "seed")


@dataclasses.dataclass(frozen=True)
class Recorded:
    """One configuration's curve: its parameters and, per epoch trained, the validation
    accuracy and loss and the seconds the epoch took (training and evaluation; the first
    epoch also pays for building the network). A training that diverged stops there: its
    epoch's seconds are counted, its accuracy and loss are not (a search prunes it then)."""

    number: int
    params: dict
    val_accuracy: list[float]
    val_loss: list[float]
    seconds: list[float]
    diverged: str = ""  # the trainer's line, for a training whose loss became NaN


def settings_of(args) -> dict:
    """The table's settings, from the section's flags."""
    from search.tuning.records.searched import parse_fixed

    return {
        "space": args.record_space, "dataset": args.dataset, "classes": [],
        "epochs": args.record_epochs, "fixed_params": parse_fixed(args.record_fix),
        "seed": args.record_seed,
    }  # fmt: skip


def context_of(settings: dict, number: int) -> spaces.SpaceContext:
    """The space's context for configuration `number`, whose training seed is its own."""
    return spaces.SpaceContext(settings["dataset"], settings["epochs"],
                               seed_plus(settings["seed"], number),
                               tuple(settings["classes"]))  # fmt: skip


def drawn(settings: dict, number: int) -> tuple[dict, config.TrialConfig]:
    """Configuration `number`: its parameters and its config, as a trial of a random search
    with the table's --fix would be given them."""
    sampler = optuna.samplers.PartialFixedSampler(
        settings["fixed_params"],
        optuna.samplers.RandomSampler(seed=seed_plus(settings["seed"], number)),
    )
    study = optuna.create_study(sampler=sampler, storage=optuna.storages.InMemoryStorage())
    trial = study.ask()
    chosen = spaces.SPACES[settings["space"]](trial, context_of(settings, number))
    return dict(trial.params), config.validate(chosen, source=f"configuration {number}")


def record_one(
    number: int, settings: dict, train_set, val_set, num_classes: int, on_device
) -> Recorded:
    """Configuration `number` trained to its end on the training split, measured on the
    validation split after every epoch (both already on `on_device`), as a search's trial
    is."""
    params, trial_config = drawn(settings, number)
    started = time.perf_counter()
    state = trainer.start_training(trial_config, train_set, val_set, num_classes, on_device)
    accuracy, loss, seconds = [], [], []
    while not state.done:
        try:
            epoch = trainer.advance(state)
        except trainer.TrainingDiverged as error:
            seconds.append(time.perf_counter() - started)
            return Recorded(number, params, accuracy, loss, seconds, diverged=str(error))
        accuracy.append(epoch.val_accuracy)
        loss.append(epoch.val_loss)
        seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
    return Recorded(number, params, accuracy, loss, seconds)


def read_table(folder: Path) -> tuple[dict, list[Recorded]]:
    """A recorded table: its settings and its configurations (none yet: an empty list)."""
    folder = Path(folder)
    try:
        settings = json.loads((folder / SETTINGS).read_text())
    except FileNotFoundError:
        raise UsageError(f"{folder} holds no recorded table (no {SETTINGS}; "
                         "search.bench --sections record writes one)") from None  # fmt: skip
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {folder / SETTINGS}: {error}") from None
    table = folder / TABLE
    lines = table.read_text().splitlines() if table.exists() else []
    try:
        rows = [Recorded(**json.loads(line)) for line in lines if line.strip()]
    except (ValueError, TypeError) as error:
        raise UsageError(f"cannot read {table}: {str(error).splitlines()[0]}") from None
    return settings, rows


def write_table(folder: Path, settings: dict, rows: list[Recorded]) -> None:
    files.write_text(folder / SETTINGS, json.dumps(settings, indent=2) + "\n")
    lines = [json.dumps(dataclasses.asdict(row)) for row in rows]
    files.write_text(folder / TABLE, "".join(line + "\n" for line in lines))


def resumed(folder: Path, settings: dict) -> list[Recorded]:
    """The configurations already recorded in `folder` under the same settings."""
    if not (folder / SETTINGS).exists():
        return []
    earlier, rows = read_table(folder)
    differ = [key for key in SAME if earlier.get(key) != settings[key]]
    if differ:
        raise UsageError(
            f"--record-to {folder} holds a table of other settings ({', '.join(differ)}: "
            f"{', '.join(repr(earlier.get(key)) for key in differ)}); name another folder"
        )
    return rows


def ranges(settings: dict) -> dict[str, dict]:
    """Each parameter's range across the space's branches (Optuna's distribution JSON): the
    replay's neighbour distance is measured in them."""
    found, _ = spaces.describe.parameter_ranges(settings["space"], context_of(settings, 0))
    return {name: json.loads(optuna.distributions.distribution_to_json(distribution))
            for name, distribution in found.items()}  # fmt: skip


def folder_of(args) -> Path:
    return Path(args.record_to or f"recorded/{args.record_space}-{args.dataset}")


def check(args) -> None:
    """The section's flags, before any data is read: a space and pins it has, a folder that
    can be written and holds no table of other settings."""
    settings = settings_of(args)
    spaces.get(settings["space"])
    spaces.describe.check_fixed(settings["space"], context_of(settings, 0),
                                settings["fixed_params"])  # fmt: skip
    files.check_folder(folder_of(args))
    resumed(folder_of(args), settings)


def record_rows(bench) -> Iterator[Row]:
    """Record --record-configs configurations into --record-to, resuming what is there."""
    from search.bench import sections

    args = bench.args
    folder, settings = folder_of(args), settings_of(args)
    rows = resumed(folder, settings)
    settings = {
        **settings, "configs": max(args.record_configs, len(rows)), "ranges": ranges(settings),
        "machine": sections.describe_machine(bench.on_device),
        "train_images": len(bench.dataset.train), "val_images": len(bench.dataset.val),
    }  # fmt: skip
    started, earlier = time.perf_counter(), len(rows)
    # on the device once, as the objective moves a search's data once, not once a trial
    train_set, val_set = (bench.dataset.train.to(bench.on_device),
                          bench.dataset.val.to(bench.on_device))  # fmt: skip
    for number in range(len(rows), args.record_configs):
        rows.append(record_one(number, settings, train_set, val_set,
                               bench.dataset.num_classes, bench.on_device))  # fmt: skip
        write_table(folder, settings, rows)
        last = rows[-1]
        final = f"{100 * last.val_accuracy[-1]:.2f}%" if last.val_accuracy else "-"
        print(f"record: {number + 1}/{args.record_configs} val {final} in "
              f"{sum(last.seconds):.1f} s{' (diverged)' if last.diverged else ''}",
              flush=True)  # fmt: skip
    write_table(folder, settings, rows)
    yield summary_row(folder, settings, rows, len(rows) - earlier, time.perf_counter() - started)


def summary_row(folder: Path, settings: dict, rows: list[Recorded], new: int, took: float):
    finals = sorted(r.val_accuracy[-1] for r in rows if not r.diverged and r.val_accuracy)
    epoch_seconds = [s for r in rows for s in r.seconds]
    fix = ",".join(f"{k}={v}" for k, v in settings["fixed_params"].items()) or "none"
    setting = (f"{settings['space']} on {settings['dataset']}, --fix {fix}, "
               f"{settings['epochs']} epochs, seed {settings['seed']}, into {folder}")  # fmt: skip
    if not finals:
        return Row("record", setting, f"{len(rows)} configurations, none trained to the end",
                   None, {"configs": len(rows)})  # fmt: skip
    result = (
        f"{len(rows)} configurations ({new} now, in {took:.0f} s); final val "
        f"{100 * finals[0]:.2f}% to {100 * finals[-1]:.2f}%, median "
        f"{100 * statistics.median(finals):.2f}%; {statistics.median(epoch_seconds):.2f} s an "
        f"epoch (median); {sum(1 for r in rows if r.diverged)} diverged"
    )
    figures = {"folder": str(folder), "configs": len(rows), "recorded_now": new,
               "seconds": took, "final_best": finals[-1],
               "final_median": statistics.median(finals),
               "epoch_seconds_median": statistics.median(epoch_seconds),
               "diverged": sum(1 for r in rows if r.diverged)}  # fmt: skip
    return Row("record", setting, result, None, figures)
