"""`python -m search.run`: create or resume a study and run trials until it has --trials finished.

python -m search.run --space resnet --trials 200
python -m search.run --space resnet --trials 20 --dataset sample --epochs 3

The parser needs only the option groups (each beside the code that uses it) and the registries
they name; the rest is imported in main(), so that --help and a mistyped flag answer without
loading torch.
"""

import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

import spaces
from registry import UsageError, files
from search import cli
from search.tuning import study
from search.tuning.execution.checkpoints import CheckpointOptions
from search.tuning.execution.trial_loop import Budget
from search.tuning.records import ledger
from search.tuning.records.searched import Searched
from search.tuning.records.settings import StudySettings
from search.tuning.store import room, storage, urls
from search.tuning.store.storage import Liveness
from search.tuning.strategies import transfer
from search.tuning.strategies.strategy import StrategyOptions
from search.tuning.strategies.transfer import DEFAULT_GUIDE, DEFAULT_TOP, WarmStartOptions

# The option groups of the study's settings and this run's options, each defined beside the
# code that uses it, in the order --help shows and request() checks them; where two set the
# same setting, the later wins (--scheduler pbt sets the trials its population runs).
GROUPS = (Searched, Budget, StrategyOptions, WarmStartOptions, CheckpointOptions, Liveness)


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.run",
        description="Search hyperparameters of an image classifier with Optuna. Re-running the "
        "same command resumes the study.",
    )
    parser.add_argument(
        "--list-spaces",
        action="store_true",
        help="list the spaces with their parameters and ranges (for --epochs), then exit",
    )
    data = parser.add_argument_group("study and data")
    cli.add_study_arguments(data, study_help="study name (default: <space>-<dataset>)")
    cli.add_dataset_arguments(data)
    cli.add_classes_argument(data, "only these classes (e.g. car,deer,horse,monkey,truck of stl10)")
    for group in GROUPS:
        group.add_to(parser)
    placement = parser.add_argument_group("placement and output")
    cli.add_worker_arguments(placement)
    cli.add_compile_argument(placement, "; every worker of the study compiles")
    placement.add_argument(
        "--create-only",
        action="store_true",
        help="create (or update) the study and start no workers: a cluster's scheduler starts "
        "them with search.worker (deploy/slurm, deploy/kubernetes)",
    )
    placement.add_argument(
        "--quiet",
        action="store_true",
        help="no line per trial, only the summary (on a terminal, a live progress bar with "
        "the ETA is shown otherwise)",
    )
    return parser


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How this run of a study goes, beside what the study records (StudySettings): which
    study in which storage, the data's folder, where its workers run, for how long, and what
    to say."""

    study: str
    storage: str
    data_dir: Path
    device: str = "auto"
    gpus: str | None = None
    workers_per_gpu: int = 1
    timeout: float | None = None
    warm_start: bool = False
    warm_start_storage: str | None = None  # where --warm-start-from's study is (None: storage)
    warm_start_top: int = DEFAULT_TOP
    warm_start_by: str = DEFAULT_GUIDE  # how the earlier study's configs guide it (GUIDES)
    create_only: bool = False
    quiet: bool = False
    command: str = ""  # how it was asked for, for the study's note


# Flags that ask something of this process, not of the study or its run.
PROCESS_FLAGS = ("verbose", "list_spaces")


def defaults() -> dict[str, Any]:
    """search.run's flags' defaults, by their names (--workers-per-gpu: workers_per_gpu)."""
    given = vars(get_args_parser().parse_args([]))
    return {name: value for name, value in given.items() if name not in PROCESS_FLAGS}


# A study names its checkpoint folder (checkpoints.folder_name, then -KEY): room for both
# in a file system's 255-byte name
LONGEST_STUDY_NAME = 200


def study_name(given: str | None, default: str) -> str:
    """--study as given (any characters: the folder's name is made safe), or the default."""
    if given is None:
        return default
    if not given.strip():
        raise UsageError(f"--study must name the study, not '{given}' (default {default})")
    if any(not character.isprintable() for character in given):
        raise UsageError(f"--study must not hold control characters, as {given!r} does: a "
                         "name is printed in every line about the study")  # fmt: skip
    if len(given.encode()) > LONGEST_STUDY_NAME:
        raise UsageError(
            f"--study is {len(given.encode())} bytes long; at most {LONGEST_STUDY_NAME}, "
            "since it names the study's checkpoint folder"
        )
    return given


def request(**values: Any) -> tuple[StudySettings, RunOptions]:
    """What search.run (and search.api.search, with the same names as keywords) asks for, every
    part checked before anything is opened or recorded: the study's settings and this run's
    options, group by group. Values come as the flags give them or as Python values (a list
    of classes, a mapping for fix, a tuple of objectives)."""
    known = defaults()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(
            f"unknown option {', '.join(unknown)}; the options are search.run's flags: "
            f"{', '.join(sorted(known))}"
        )
    given = {**known, **values}
    classes = given["classes"]
    settings = {
        "dataset": given["dataset"], "compile": given["compile"],
        "classes": cli.class_names(classes) if isinstance(classes, str) else list(classes),
    }  # fmt: skip
    run_options = {}
    for group in GROUPS:
        chosen = group.of(given)
        chosen.check(given)
        settings.update(chosen.settings(given))
        run_options.update(chosen.run_options())
    options = RunOptions(
        study=study_name(given["study"], f"{settings['space']}-{given['dataset']}"),
        storage=given["storage"], data_dir=Path(given["data_dir"]), device=given["device"],
        gpus=given["gpus"], workers_per_gpu=given["workers_per_gpu"],
        create_only=bool(given["create_only"]), quiet=bool(given["quiet"]), **run_options,
    )  # fmt: skip
    return study.checked(settings), options


def start(wanted: StudySettings, options: RunOptions) -> tuple[int, optuna.Study]:
    """Create or resume the study with `wanted` settings and run its workers (or, with
    create_only, leave them to a cluster's scheduler): what search.run, search.api.search and
    a cluster's study-creating job all call. The exit code, and the study as the workers
    left it."""
    from search.tuning.execution import launch, worker_loop
    from search.tuning.results import progress

    slots = launch.plan_slots(options.device, options.gpus, options.workers_per_gpu)
    dataset = prepared(wanted, options, slots)
    name = options.study
    with storage.kept_open(options.storage) as study_storage:
        running, wanted = created(study_storage, wanted, options, dataset, len(slots))
        finished = len(running.get_trials(deepcopy=False, states=ledger.FINISHED))
        if options.create_only:
            print(f"study {name}: {finished}/{wanted.trials} trials finished; workers join it "
                  f"with python -m search.worker --study {shlex.quote(name)} --storage "
                  f"{shlex.quote(options.storage)}")  # fmt: skip
            return 0, running
        print(f"study {name}: {finished}/{wanted.trials} trials finished; "
              + described(wanted, dataset, slots), flush=True)  # fmt: skip
        code = worker_loop.run_workers(
            slots, options.storage, name, wanted, options.data_dir, options.timeout,
            options.quiet, dataset=dataset,
        )  # fmt: skip
        running = study.load(study_storage, name)  # as the workers left it
        print(progress.summary(running, options.storage))
        if code and ledger.reached(
            running.get_trials(deepcopy=False), wanted.trials, wanted.epoch_budget
        ):
            print("search.run: the study reached its target although some of its workers "
                  "failed (above): exit code 0", file=sys.stderr)  # fmt: skip
            code = 0
        return code, running


def prepared(wanted: StudySettings, options: RunOptions, slots):
    """The dataset, loaded once everything that can be checked before the storage is opened
    has been: a malformed URL, too few connections, the data, the checkpoint to fine-tune, the
    checkpoint folder (no empty study file on a mistake)."""
    from search.training import data
    from search.tuning.execution import worker_loop

    urls.check_url(options.storage)
    room.check_connections(options.storage, 0 if options.create_only else len(slots))
    dataset = data.load(wanted.dataset, options.data_dir, classes=wanted.classes)
    if wanted.init_from:
        worker_loop.space_context(wanted)
    if wanted.checkpoint_dir:
        files.check_folder(Path(wanted.checkpoint_dir))
    return dataset


def created(study_storage, wanted: StudySettings, options: RunOptions, dataset, workers: int):
    """The study created or resumed, with what it starts from queued (an earlier study's
    configs, or the reports') and a note of where it runs; and its settings as recorded."""
    import optuna_dashboard

    from search.tuning.execution import environment, worker_loop

    transferred = None
    if wanted.warm_start_from and options.study not in study.names(study_storage):
        source_storage = options.warm_start_storage or options.storage
        transferred = study.warm_start(
            wanted, source_storage, study_storage if source_storage == options.storage else None,
            worker_loop.space_context(wanted), options.warm_start_top,
        )  # fmt: skip
        wanted = transfer.born_with(wanted, transferred, options.warm_start_by)
    running = study.create_or_resume(study_storage, options.study, wanted)
    if transferred:
        transfer.enqueue(running, transferred)
        print(transferred.describe(options.warm_start_by))
    if options.warm_start:
        queued = study.enqueue_warm_starts(running, wanted.space)
        print(f"warm start: queued {queued} known-good config(s) of space {wanted.space}")
    optuna_dashboard.save_note(running, environment.study_note(options.command, dataset, workers))
    return running, study.settings_of(running)  # as recorded: with the study's checkpoint key


def described(wanted: StudySettings, dataset, slots) -> str:
    """What the run is, in the line search.run starts with."""
    where = ", ".join(sorted({f"{s.device}{'' if s.gpu is None else s.gpu}" for s in slots}))
    strategy = (
        f"population-based training of {wanted.population} members (an exploit every "
        f"{wanted.pbt_interval} epoch(s))"
        if wanted.scheduler == "pbt"
        else f"{wanted.pruner} pruner"
    )
    return (
        f"space {wanted.space}, {wanted.dataset} ({len(dataset.train)} train / "
        f"{len(dataset.val)} val images), up to {wanted.epochs} epochs per trial, "
        f"{wanted.sampler} sampler, {strategy}, {len(slots)} worker(s) on {where}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(get_args_parser().parse_args(argv))
    spaces.import_user_module(args["space_module"])
    if args["list_spaces"]:
        print(spaces.describe.describe_all(spaces.list_spaces(), args["epochs"]))
        return 0
    wanted, options = request(**{key: args[key] for key in args if key not in PROCESS_FLAGS})
    command = shlex.join(["python", "-m", "search.run", *(sys.argv[1:] if argv is None else argv)])
    code, _ = start(wanted, dataclasses.replace(options, command=command))
    return code


if __name__ == "__main__":
    cli.run_main(main, "search.run")
