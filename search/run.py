"""`python -m search.run`: create or resume a study and run trials until it has --trials finished.

python -m search.run --space resnet --trials 200
python -m search.run --space resnet --trials 20 --dataset sample --epochs 3

The parser needs only the spaces and samplers registries; the rest is imported in main(), so
that --help and a mistyped flag answer without loading torch.
"""

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import spaces
from registry import UsageError, files
from search import cli
from search.tuning import samplers, storage

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
        help=f"{', '.join(samplers.PRUNERS.names())} (default hyperband; decides per epoch; "
        "a study with several --objectives is not pruned)",
    )
    parser.add_argument(
        "--objectives",
        default="accuracy",
        help="what to optimise: accuracy (default), or accuracy,params or accuracy,latency "
        "(also minimise the parameter count or the forward time per batch on the trial's "
        "device) for a multi-objective study with a Pareto front. Pruning does not apply "
        "there: every trial trains all its epochs (Optuna prunes single-objective studies "
        "only). Fixed when the study is created",
    )
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="before sampling, queue the space's known-good configs from the reports (see "
        "--list-spaces); each runs once per study",
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


def parse_fixed(text: str | None) -> dict[str, object]:
    """'image_size=0,flip=true' -> {'image_size': 0, 'flip': True} (values read as YAML)."""
    import yaml

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


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    cli.check_positive(args, "trials", "epochs", "timeout", "heartbeat_interval", "grace_period")
    spaces.import_user_module(args.space_module)
    if args.list_spaces:
        print(spaces.describe.describe_all(spaces.list_spaces(), args.epochs))
        return 0
    if args.space is None:
        raise UsageError("--space is required (see --list-spaces)")
    spaces.get(args.space)
    init_from = str(args.init_from.resolve()) if args.init_from else ""  # every host's path
    if (args.space in spaces.FINE_TUNING) != bool(init_from):
        raise UsageError(
            f"--space {args.space} needs --init-from CHECKPOINT"
            if args.space in spaces.FINE_TUNING
            else f"--init-from is for the fine-tuning spaces ({', '.join(sorted(spaces.FINE_TUNING))})"
        )
    fixed_params = parse_fixed(args.fix)
    if fixed_params:
        context = spaces.SpaceContext(args.dataset, args.epochs, args.seed,
                                      pretrained=spaces.describe.LISTED_CHECKPOINT)  # fmt: skip
        spaces.describe.check_fixed(args.space, context, fixed_params)
    import optuna_dashboard

    from search.training import data
    from search.tuning import environment, launch, progress, settings, study, worker_loop

    objectives = study.parse_objectives(args.objectives)
    pruner = samplers.check_choice(args.sampler, args.pruner, len(objectives))
    wanted = settings.checked(  # every setting checked before anything is recorded
        {
            "space": args.space,
            "dataset": args.dataset,
            "classes": args.classes,
            "init_from": init_from,
            "epochs": args.epochs,
            "objectives": ",".join(objectives),
            "fixed_params": fixed_params,
            "trials": args.trials,
            "sampler": args.sampler,
            "pruner": pruner,
            "seed": args.seed,
            "space_module": args.space_module,
            "heartbeat_interval": args.heartbeat_interval,
            "grace_period": args.grace_period,
            "compile": args.compile,
            "checkpoint_dir": str(Path(args.checkpoint_dir).resolve())
            if args.checkpoint_dir
            else "",
            "keep_checkpoints": args.keep_checkpoints,
        }
    )
    slots = launch.plan_slots(args.device, args.gpus, args.workers_per_gpu)
    storage.check_url(args.storage)  # a malformed URL fails now, not after loading the data
    storage.check_connections(args.storage, 0 if args.create_only else len(slots))
    # the data before the storage, and the checkpoint too: no empty study file on a mistake
    dataset = data.load(args.dataset, args.data_dir, classes=args.classes)
    if init_from:
        worker_loop.space_context(wanted)
    if wanted.checkpoint_dir:
        files.check_folder(Path(wanted.checkpoint_dir))
    name = args.study or f"{args.space}-{args.dataset}"
    with storage.kept_open(args.storage) as study_storage:
        running = study.create_or_resume(study_storage, name, wanted)
        if args.warm_start:
            queued = study.enqueue_warm_starts(running, args.space)
            print(f"warm start: queued {queued} known-good config(s) of space {args.space}")
        optuna_dashboard.save_note(
            running, environment.study_note(list(argv or sys.argv[1:]), dataset, len(slots))
        )
        finished = len(running.get_trials(deepcopy=False, states=progress.FINISHED))
        if args.create_only:
            print(f"study {name}: {finished}/{args.trials} trials finished; workers join it with "
                  f"python -m search.worker --study {shlex.quote(name)} --storage "
                  f"{shlex.quote(args.storage)}")  # fmt: skip
            return 0
        where = ", ".join(sorted({f"{s.device}{'' if s.gpu is None else s.gpu}" for s in slots}))
        print(
            f"study {name}: {finished}/{args.trials} trials finished; space {args.space}, "
            f"{args.dataset} ({len(dataset.train)} train / {len(dataset.val)} val images), "
            f"up to {args.epochs} epochs per trial, {args.sampler} sampler, {pruner} pruner, "
            f"{len(slots)} worker(s) on {where}",
            flush=True,
        )
        code = worker_loop.run_workers(
            slots, args.storage, name, args.data_dir, args.timeout, args.quiet, dataset=dataset
        )
        running = study.load(study_storage, name)  # as the workers left it
        print(progress.summary(running, args.storage))
        return code


if __name__ == "__main__":
    cli.run_main(main, "search.run")
