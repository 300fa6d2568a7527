"""`python -m search.run`: create or resume a study and run trials until it has --trials finished.

python -m search.run --space resnet --trials 200
python -m search.run --space resnet --trials 20 --dataset sample --epochs 3

The parser needs only the spaces and samplers registries; the rest is imported in main(), so
that --help and a mistyped flag answer without loading torch.
"""

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

import spaces
from registry import UsageError, files
from search import cli
from search.tuning import study
from search.tuning.records import ledger
from search.tuning.records import settings as study_settings
from search.tuning.records.settings import StudySettings
from search.tuning.store import room, storage, urls
from search.tuning.strategies import pruners, samplers, strategy, transfer

DEFAULT_CHECKPOINT_DIR = "checkpoints"


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.run",
        description="Search hyperparameters of an image classifier with Optuna. Re-running the "
        "same command resumes the study.",
    )
    parser.add_argument(
        "--space", help=f"search space: {', '.join(spaces.list_spaces())} (required)"
    )
    parser.add_argument(
        "--list-spaces",
        action="store_true",
        help="list the spaces with their parameters and ranges (for --epochs), then exit",
    )
    parser.add_argument(
        "--trials",
        type=int,
        default=100,
        help="finished (complete or pruned) trials wanted in the study in total, across all "
        "workers and runs (default 100)",
    )
    cli.add_study_arguments(parser, study_help="study name (default: <space>-<dataset>)")
    cli.add_dataset_arguments(parser)
    cli.add_classes_argument(
        parser, "only these classes (e.g. car,deer,horse,monkey,truck of stl10)"
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        help="a checkpoint.pt from search.train to fine-tune (--space finetune); its head is "
        "replaced when the class count differs",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=20,
        help="epochs every trial plans (its schedule spans them); the pruner stops the ones "
        "that fall behind (default 20)",
    )
    parser.add_argument(
        "--sampler",
        default="tpe",
        help=f"{', '.join(samplers.SAMPLERS.names())} (default tpe)",
    )
    parser.add_argument(
        "--pruner",
        help=f"{', '.join(pruners.PRUNERS.names())} (default hyperband; decides per epoch; "
        "with several --objectives: moasha, successive halving by Pareto front (the "
        "default), or none)",
    )
    parser.add_argument(
        "--objectives",
        default="accuracy",
        help="what to optimise: accuracy (default), or accuracy,params or accuracy,latency "
        "(also minimise the parameter count or the forward time per batch on the trial's "
        "device) for a multi-objective study with a Pareto front, pruned by --pruner moasha "
        "unless --pruner none. Fixed when the study is created",
    )
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="before sampling, queue the space's known-good configs from the reports (see "
        "--list-spaces); each runs once per study",
    )
    parser.add_argument(
        "--scheduler",
        default="",
        choices=["", "pbt"],
        help="pbt: population-based training instead of independent trials: --population "
        "members train together and every --pbt-interval epochs the worst quarter copy the "
        "weights and hyperparameters of the best quarter and perturb the learning rate, weight "
        "decay and augmentation strengths (x0.8 or x1.2), as Ray Tune's synchronous PBT does; "
        "--trials is then the population times its intervals (default: independent trials)",
    )
    parser.add_argument(
        "--population",
        type=int,
        metavar="N",
        help="with --scheduler pbt: members of the population (default 8)",
    )
    parser.add_argument(
        "--pbt-interval",
        type=int,
        metavar="E",
        help="with --scheduler pbt: epochs between exploits (default a quarter of --epochs)",
    )
    parser.add_argument(
        "--warm-start-from",
        default="",
        metavar="STUDY",
        help="when creating the study, start from an earlier study of the same space (other "
        "data, classes or --epochs): its best configs run first, fitted to this study's "
        "ranges, and the sampler searches the box they span (Syne Tune's BoundingBox)",
    )
    parser.add_argument(
        "--warm-start-storage",
        metavar="URL",
        help="the storage of the --warm-start-from study, read only (default: --storage)",
    )
    parser.add_argument(
        "--warm-start-top",
        type=int,
        default=transfer.DEFAULT_TOP,
        metavar="K",
        help="with --warm-start-from: how many of its best configs to queue and span the box "
        f"with (default {transfer.DEFAULT_TOP})",
    )
    parser.add_argument(
        "--fix",
        help="pin parameters of the space, NAME=VALUE,NAME=VALUE (e.g. image_size=0): every "
        "trial takes these, the sampler chooses the rest (Optuna's PartialFixedSampler)",
    )
    parser.add_argument(
        "--timeout", type=float, help="stop starting new trials after this many seconds"
    )
    parser.add_argument(
        "--epoch-budget",
        type=int,
        default=0,
        metavar="E",
        help="stop starting trials once the study's trials have trained E epochs in all (each "
        "epoch once: a resumed or continued trial's earlier epochs are not counted again), "
        "whichever of this and --trials comes first (default 0: no limit)",
    )
    parser.add_argument(
        "--pause-pruned",
        action="store_true",
        help="successive halving (--pruner hyperband or sha) pauses the trials it stops, "
        "keeping their checkpoints, and continues one from there when later results put it "
        "in its rung's top share (as ASHA promotes); a continuation takes the paused trial's "
        "place in --trials",
    )
    parser.add_argument(
        "--keep-paused",
        type=int,
        default=20,
        metavar="K",
        help="with --pause-pruned, keep the checkpoints of the K most promising paused trials "
        "(the highest rung, then the best value); the others' are removed and they cannot be "
        "continued (default 20)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="sampler seed; trial N trains with seed+N (default 0)"
    )
    cli.add_worker_arguments(parser)
    parser.add_argument(
        "--create-only",
        action="store_true",
        help="create (or update) the study and start no workers: a cluster's scheduler starts "
        "them with search.worker (deploy/slurm, deploy/kubernetes)",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no line per trial, only the summary (on a terminal, a live progress bar with "
        "the ETA is shown otherwise)",
    )
    cli.add_compile_argument(parser, "; every worker of the study compiles")
    parser.add_argument(
        "--space-module",
        help="import this module first: its @spaces.register_space functions add spaces "
        "(workers import it too; it must be importable on every host)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=int,
        default=storage.HEARTBEAT_INTERVAL_SECONDS,
        help="seconds between a running trial's heartbeats "
        f"(default {storage.HEARTBEAT_INTERVAL_SECONDS})",
    )
    parser.add_argument(
        "--grace-period",
        type=int,
        default=storage.GRACE_PERIOD_SECONDS,
        help="seconds without a heartbeat after which a trial counts as dead: it is marked "
        "FAIL and re-run with the same parameters, from its last checkpoint "
        f"(default {storage.GRACE_PERIOD_SECONDS})",
    )
    parser.add_argument(
        "--storage-patience",
        type=int,
        default=1800,
        metavar="S",
        help="seconds a worker waits for a lost storage (a database restart, a maintenance "
        "window, the proxy down) before it gives up; it says when it starts waiting and when "
        "the storage is back, and re-runs the trial the outage cut off from its checkpoint "
        "(default 1800; 0 waits for ever)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=DEFAULT_CHECKPOINT_DIR,
        help="where trials checkpoint every epoch, so that a re-run of a killed or preempted "
        "one resumes there (a folder at the same path on every host: a shared filesystem); "
        f"'' for none (default ./{DEFAULT_CHECKPOINT_DIR})",
    )
    parser.add_argument(
        "--keep-checkpoints",
        type=int,
        default=0,
        metavar="K",
        help="keep the checkpoints of the K best complete trials; the rest are removed when "
        "their trials finish (default 0)",
    )
    return parser


def parse_fixed(text: str | Mapping[str, object] | None) -> dict[str, object]:
    """'image_size=0,flip=true' -> {'image_size': 0, 'flip': True} (values read as YAML); a
    mapping (from search.api) as it is."""
    import yaml

    if isinstance(text, Mapping):
        return dict(text)
    fixed: dict[str, object] = {}
    for item in text.split(",") if text else []:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--fix takes NAME=VALUE,NAME=VALUE, not '{text}'")
        try:
            fixed[name.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"--fix {item}: cannot read the value '{value}'") from None
    return fixed


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
    warm_start_top: int = transfer.DEFAULT_TOP
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


DEFAULT_POPULATION = 8  # Ray Tune's PBT examples run 4 to 8; the PBT paper 10 to 80


def population_settings(given: dict[str, Any]) -> dict[str, Any]:
    """--scheduler, --population and --pbt-interval as the study records them, with the
    pruner and the trials they imply: with pbt, no pruner (members stop at each interval
    themselves) and a trial for each member's each interval."""
    if given["scheduler"] != "pbt":
        for flag in ("population", "pbt_interval"):
            if given[flag] is not None:
                raise UsageError(f"--{flag.replace('_', '-')} is for --scheduler pbt")
        return {"scheduler": "", "population": 0, "pbt_interval": 0}
    population = DEFAULT_POPULATION if given["population"] is None else given["population"]
    interval = given["pbt_interval"] or max(1, given["epochs"] // 4)
    return {
        "scheduler": "pbt", "population": population, "pbt_interval": interval,
        "pruner": given["pruner"] or "none",
        "trials": population * -(-given["epochs"] // interval),  # each member's intervals
    }  # fmt: skip


def study_name(given: str | None, default: str) -> str:
    """--study as given (any characters: the folder's name is made safe), or the default."""
    if given is None:
        return default
    if not given.strip():
        raise UsageError(f"--study must name the study, not '{given}' (default {default})")
    if len(given.encode()) > LONGEST_STUDY_NAME:
        raise UsageError(
            f"--study is {len(given.encode())} bytes long; at most {LONGEST_STUDY_NAME}, "
            "since it names the study's checkpoint folder"
        )
    return given


def request(**values: Any) -> tuple[StudySettings, RunOptions]:
    """What search.run (and search.api.search, with the same names as keywords) asks for, every
    part checked before anything is opened or recorded: the study's settings and this run's
    options. Values come as the flags give them or as Python values (a list of classes, a
    mapping for fix, a tuple of objectives)."""
    known = defaults()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(
            f"unknown option {', '.join(unknown)}; the options are search.run's flags: "
            f"{', '.join(sorted(known))}"
        )
    given = {**known, **values}
    cli.check_positive(
        argparse.Namespace(**given), "trials", "epochs", "timeout", "heartbeat_interval",
        "grace_period", "warm_start_top",
    )  # fmt: skip
    if given["warm_start"] and given["warm_start_from"]:
        raise UsageError(
            "--warm-start and --warm-start-from both queue configs first: choose one (the "
            "earlier study's box may leave out the reports' configs)"
        )
    if given["warm_start_storage"] and not given["warm_start_from"]:
        raise UsageError("--warm-start-storage names where --warm-start-from's study is; "
                         "give --warm-start-from STUDY too")  # fmt: skip
    space = given["space"]
    if space is None:
        raise UsageError("--space is required (see --list-spaces)")
    spaces.get(space)
    # resolved here, so that workers on every host read the same path
    init_from = str(Path(given["init_from"]).resolve()) if given["init_from"] else ""
    if (space in spaces.FINE_TUNING) != bool(init_from):
        raise UsageError(
            f"--space {space} needs --init-from CHECKPOINT"
            if space in spaces.FINE_TUNING
            else f"--init-from is for the fine-tuning spaces ({', '.join(sorted(spaces.FINE_TUNING))})"
        )
    fixed_params = parse_fixed(given["fix"])
    if fixed_params:
        context = spaces.SpaceContext(given["dataset"], given["epochs"], given["seed"],
                                      pretrained=spaces.describe.LISTED_CHECKPOINT)  # fmt: skip
        spaces.describe.check_fixed(space, context, fixed_params)
    population = population_settings(given)
    objectives = given["objectives"]
    if isinstance(objectives, str):
        objectives = study_settings.parse_objectives(objectives)
    study_settings.check_objectives(tuple(objectives))
    classes = given["classes"]
    checkpoint_dir = given["checkpoint_dir"]
    wanted = study.checked(
        {
            "space": space,
            "dataset": given["dataset"],
            "classes": cli.class_names(classes) if isinstance(classes, str) else list(classes),
            "init_from": init_from,
            "epochs": given["epochs"],
            "objectives": tuple(objectives),
            "fixed_params": fixed_params,
            "trials": given["trials"],
            "sampler": given["sampler"],
            "pruner": strategy.check_choice(given["sampler"], given["pruner"], len(objectives)),
            **population,
            "seed": given["seed"],
            "space_module": given["space_module"],
            "heartbeat_interval": given["heartbeat_interval"],
            "grace_period": given["grace_period"],
            "storage_patience": given["storage_patience"],
            "compile": given["compile"],
            "checkpoint_dir": str(Path(checkpoint_dir).resolve()) if checkpoint_dir else "",
            "keep_checkpoints": given["keep_checkpoints"],
            "epoch_budget": given["epoch_budget"],
            "pause_pruned": bool(given["pause_pruned"]),
            "keep_paused": given["keep_paused"],
            "warm_start_from": given["warm_start_from"] or "",
        }
    )
    options = RunOptions(
        study=study_name(given["study"], f"{space}-{given['dataset']}"),
        storage=given["storage"],
        data_dir=Path(given["data_dir"]),
        device=given["device"],
        gpus=given["gpus"],
        workers_per_gpu=given["workers_per_gpu"],
        timeout=given["timeout"],
        warm_start=bool(given["warm_start"]),
        warm_start_storage=given["warm_start_storage"],
        warm_start_top=given["warm_start_top"],
        create_only=bool(given["create_only"]),
        quiet=bool(given["quiet"]),
    )
    return wanted, options


def start(wanted: StudySettings, options: RunOptions) -> tuple[int, optuna.Study]:
    """Create or resume the study with `wanted` settings and run its workers (or, with
    create_only, leave them to a cluster's scheduler): what search.run, search.api.search and
    a cluster's study-creating job all call. The exit code, and the study as the workers
    left it."""
    import optuna_dashboard

    from search.training import data
    from search.tuning.execution import environment, launch, worker_loop
    from search.tuning.results import progress

    slots = launch.plan_slots(options.device, options.gpus, options.workers_per_gpu)
    urls.check_url(options.storage)  # a malformed URL fails now, not after loading the data
    room.check_connections(options.storage, 0 if options.create_only else len(slots))
    # the data before the storage, and the checkpoint too: no empty study file on a mistake
    dataset = data.load(wanted.dataset, options.data_dir, classes=wanted.classes)
    if wanted.init_from:
        worker_loop.space_context(wanted)
    if wanted.checkpoint_dir:
        files.check_folder(Path(wanted.checkpoint_dir))
    name = options.study
    with storage.kept_open(options.storage) as study_storage:
        transferred = None
        if wanted.warm_start_from and name not in study.names(study_storage):
            source_storage = options.warm_start_storage or options.storage
            transferred = study.warm_start(
                wanted, source_storage,
                study_storage if source_storage == options.storage else None,
                worker_loop.space_context(wanted), options.warm_start_top,
            )  # fmt: skip
            wanted = dataclasses.replace(wanted, search_box=transferred.box)
        running = study.create_or_resume(study_storage, name, wanted)
        wanted = study.settings(running)  # as recorded: with the study's checkpoint key
        if transferred:
            transfer.enqueue(running, transferred)
            print(transferred.describe())
        if options.warm_start:
            queued = study.enqueue_warm_starts(running, wanted.space)
            print(f"warm start: queued {queued} known-good config(s) of space {wanted.space}")
        optuna_dashboard.save_note(
            running, environment.study_note(options.command, dataset, len(slots))
        )
        finished = len(running.get_trials(deepcopy=False, states=ledger.FINISHED))
        if options.create_only:
            print(f"study {name}: {finished}/{wanted.trials} trials finished; workers join it "
                  f"with python -m search.worker --study {shlex.quote(name)} --storage "
                  f"{shlex.quote(options.storage)}")  # fmt: skip
            return 0, running
        where = ", ".join(sorted({f"{s.device}{'' if s.gpu is None else s.gpu}" for s in slots}))
        print(
            f"study {name}: {finished}/{wanted.trials} trials finished; space {wanted.space}, "
            f"{wanted.dataset} ({len(dataset.train)} train / {len(dataset.val)} val images), "
            f"up to {wanted.epochs} epochs per trial, {wanted.sampler} sampler, "
            + (
                f"population-based training of {wanted.population} members (an exploit every "
                f"{wanted.pbt_interval} epoch(s))"
                if wanted.scheduler == "pbt"
                else f"{wanted.pruner} pruner"
            )
            + f", {len(slots)} worker(s) on {where}",
            flush=True,
        )
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
