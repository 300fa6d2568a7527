"""`python -m search.bench`: how fast trials train, side by side in one run on one machine.

The benchmark's room: sections.py says what each section measures and runs them on the
trainer and the search side; scale.py runs many stand-in workers on one study; bookkeeping.py
times what a trial costs beside its training; baseline.py is the plain DataLoader pipeline,
op_count.py counts a training step's operators, utilization.py samples how busy the GPU is.
Nothing of the product imports this package (pyproject's import-linter contracts)."""

import dataclasses
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from registry import UsageError
from search import cli

# In the order they run: sections.py's SECTIONS (named here too, so that --help needs no
# torch), then scale.py's many stand-in workers
SECTIONS = ("plain", "trainer", "profile", "fast", "ablation", "ops", "bookkeeping", "search",
            "strategies", "pareto", "transfer", "record", "replay", "workers", "chaos")  # fmt: skip
# The sections that load no dataset and train nothing
DATALESS = ("replay",)
DEFAULT_SECTIONS = ("plain", "trainer", "fast", "search")


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.bench",
        description="Time the plain DataLoader pipeline, our trainer, the fast space's default "
        "config and searches with several workers per GPU, side by side.",
    )
    cli.add_dataset_arguments(parser)
    cli.add_device_argument(parser)
    parser.add_argument(
        "--sections", default=",".join(DEFAULT_SECTIONS),
        help=f"which to run, comma-separated, of {', '.join(SECTIONS)} (default "
        f"{','.join(DEFAULT_SECTIONS)}); they run in that order, and one that fails is "
        "reported and the others run; speed-ups need plain; ablation trains the fast config "
        "once per airbench94 ingredient left out; ops counts the operators of a training step; "
        "bookkeeping times what a trial costs beside its training; pareto compares "
        "--pruner moasha with none on accuracy and parameters (with the --strategy-* flags); "
        "transfer compares a search warm-started from a study of other classes with a cold "
        "one (with the --strategy-* and --transfer-* flags)",
    )  # fmt: skip
    cli.add_compile_argument(parser, " (sections 2 and 3)")
    parser.add_argument(
        "--json", type=Path,
        help="also write the measurements to this file, rewritten as each section ends",
    )  # fmt: skip
    add_trainer_arguments(parser)
    add_fast_arguments(parser)
    add_search_arguments(parser)
    add_strategy_arguments(parser)
    add_pareto_arguments(parser)
    add_record_arguments(parser)
    add_replay_arguments(parser)
    add_scale_arguments(parser)
    add_chaos_arguments(parser)
    return parser


def add_trainer_arguments(parser: cli.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "trainer",
        "sections plain, trainer and profile: ResNet-18 through the plain pipeline and ours",
    )
    group.add_argument(
        "--images", type=int, default=0,
        help="train sections 1-3 on a seeded random N of the training images (default 0: all)",
    )  # fmt: skip
    group.add_argument(
        "--epochs", type=int, default=3,
        help="ResNet-18 epochs per measurement, at least 2: the first (loader start-up, cuDNN "
        "autotuning) is not counted (default 3)",
    )  # fmt: skip
    group.add_argument("--width", type=int, default=64, help="ResNet-18 width (default 64)")
    group.add_argument(
        "--loader-workers", type=int, default=8, help="plain pipeline DataLoader workers (8)"
    )
    group.add_argument(
        "--batch-sizes", default="128,512", help="our trainer's batch sizes (default 128,512)"
    )
    group.add_argument(
        "--profile", action="store_true",
        help="add the profile section: our trainer's steps at the largest batch size under "
        "torch.profiler, a window of 20 after 10, the share of time the GPU was busy and the "
        "top GPU operations (CUDA only)",
    )  # fmt: skip


def add_fast_arguments(parser: cli.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "fast", "sections fast and ablation: the fast space's default config"
    )
    group.add_argument("--seeds", type=int, default=5, help="fast config runs (default 5)")
    group.add_argument(
        "--fast-epochs", type=int, default=10,
        help="the fast config's epochs (default 10: airbench94 trains 9.9)",
    )  # fmt: skip
    group.add_argument(
        "--fast-width", type=int, help="override the fast config's first-group width (tiny runs)"
    )


def add_search_arguments(parser: cli.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "search",
        "sections search and bookkeeping: timed searches, a trial's cost beside its training",
    )
    group.add_argument(
        "--search-space", default="convnet", help="space of the timed searches (convnet)"
    )
    group.add_argument("--search-trials", type=int, default=24, help="trials per search (24)")
    group.add_argument("--search-epochs", type=int, default=4, help="--epochs of each search (4)")
    group.add_argument(
        "--workers-per-gpu", default="1,2,4", help="one search per value (default 1,2,4)"
    )
    group.add_argument(
        "--search-storage",
        help="the searches' (and bookkeeping's) storage, kept after the run (default: a "
        "temporary SQLite file); run the same command again to resume a search that "
        "--search-timeout stopped, up to --search-trials in all",
    )
    group.add_argument(
        "--search-timeout", type=float,
        help="each search stops starting trials after this many seconds (search.run --timeout)",
    )  # fmt: skip
    group.add_argument(
        "--bookkeeping-trials", type=int, default=1000,
        help="trials per space in the bookkeeping section (1000)",
    )  # fmt: skip


def add_strategy_arguments(parser: cli.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "strategies",
        "section strategies: search strategies at an equal budget",
    )
    group.add_argument(
        "--strategies", default="random,optuna-defaults,asha,tpe-hyperband,default",
        help="strategies section: which search strategies to compare at an equal budget, of "
        "random, optuna-defaults, asha, tpe-hyperband (the default until 2026-12-06), default "
        "(search.run with no strategy flags), tpe-hyperband-pause, asha-pause, pbt (its "
        "population filling the budget), tpe-hyperband-warm (warm-started from a study of "
        "--transfer-source-classes), default-box and default-prior (the default so "
        "warm-started: the box of its best configs, or those as a prior); the replay section "
        "takes any of them but pbt (a warm start there starts from the search of the task "
        "before it in --tasks), and lce, asha-lce, mftpe-asha, mftpe-asha-lce, bohb, "
        "mftpe-sha3 (the default until 2026-12-07), mftpe-sha3-pause, default-promotion, "
        "default-hybrid, default-thaw, asha-thaw (default: the first five)",
    )  # fmt: skip
    group.add_argument(
        "--strategy-space", default="mlp", help="strategies section: the space searched (mlp)"
    )
    group.add_argument(
        "--strategy-fix", default="image_size=0",
        help="strategies section: search.run --fix for every search (image_size=0)",
    )  # fmt: skip
    group.add_argument(
        "--strategy-classes", default="", help="strategies section: search.run --classes"
    )
    group.add_argument(
        "--strategy-epochs", type=int, default=9,
        help="strategies section: --epochs of each search, a trial's most (9)",
    )  # fmt: skip
    group.add_argument(
        "--strategy-budget", type=int, default=108,
        help="strategies section: epochs each search trains in all (--epoch-budget; 108, "
        "12 whole trials of --strategy-epochs 9: on --dataset sample its table of 5 "
        "strategies took 44 min on 2 CPU cores)",
    )  # fmt: skip
    group.add_argument(
        "--strategy-repeats", type=int, default=5,
        help="strategies section: seeds per strategy (5)",
    )  # fmt: skip
    group.add_argument(
        "--strategy-workers", type=int, default=2,
        help="strategies section: worker processes per search (2)",
    )  # fmt: skip


def add_pareto_arguments(parser: cli.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "pareto and transfer", "sections pareto and transfer (with the strategies flags)"
    )
    group.add_argument(
        "--pareto-objectives", choices=("accuracy,params", "accuracy,latency"),
        default="accuracy,params",
        help="pareto section: the two objectives (accuracy,params; or accuracy,latency: ms a "
        "batch on --device)",
    )  # fmt: skip
    group.add_argument(
        "--transfer-source-classes", default="airplane,automobile,bird,cat,deer",
        help="transfer section and tpe-hyperband-warm: the earlier study's classes "
        "(airplane,automobile,bird,cat,deer)",
    )  # fmt: skip
    group.add_argument(
        "--transfer-target-classes", default="dog,frog,horse,ship,truck",
        help="transfer section: the classes searched cold and warm (dog,frog,horse,ship,truck)",
    )  # fmt: skip
    group.add_argument(
        "--transfer-source-budget", type=int, default=108,
        help="transfer section and tpe-hyperband-warm: epochs the earlier study trains "
        "(--epoch-budget; 108)",
    )  # fmt: skip
    group.add_argument(
        "--transfer-strategies", default="tpe-hyperband,tpe-hyperband-warm",
        help="transfer section: a strategy searched cold (the reference), then those "
        "warm-started from the earlier study (tpe-hyperband-warm, default-box, default-prior); "
        "default tpe-hyperband,tpe-hyperband-warm",
    )  # fmt: skip
    group.add_argument(
        "--transfer-top", type=int, default=5,
        help="transfer section and tpe-hyperband-warm: the warm search's --warm-start-top (5)",
    )  # fmt: skip


def add_record_arguments(parser: cli.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "record", "section record: learning curves of a space, for --benchmark recorded:PATH"
    )
    group.add_argument(
        "--record-space", default="mlp", help="the space whose configurations are recorded (mlp)"
    )
    group.add_argument(
        "--record-fix", default="image_size=0",
        help="search.run --fix for every recorded configuration (image_size=0)",
    )  # fmt: skip
    group.add_argument(
        "--record-epochs", type=int, default=9, help="epochs each configuration trains (9)"
    )
    group.add_argument(
        "--record-configs", type=int, default=300,
        help="configurations in the table; the same command resumes a cut-off recording, or "
        "adds to a table recorded with a smaller count (300)",
    )  # fmt: skip
    group.add_argument(
        "--record-seed", type=int, default=0,
        help="configuration k is drawn by a random sampler seeded by this and k (0)",
    )  # fmt: skip
    group.add_argument(
        "--record-to", type=Path,
        help="the table's folder: settings.json and curves.jsonl (default "
        "recorded/SPACE-DATASET)",
    )  # fmt: skip


def add_replay_arguments(parser: cli.ArgumentParser) -> None:
    from search.bench.replay.lcbench import DEVELOPMENT_TASKS

    group = parser.add_argument_group(
        "replay", "section replay: --strategies on recorded learning curves, a simulated clock"
    )
    group.add_argument(
        "--benchmark", default="lcbench",
        help="the recorded curves: lcbench (YAHPO Gym's LCBench surrogate, 34 tasks) or "
        "recorded:PATH (a table of --sections record: a configuration's curve is its nearest "
        "recorded neighbour's)",
    )  # fmt: skip
    group.add_argument(
        "--tasks",
        help=f"LCBench's tasks, comma-separated (default: its 8 development tasks, "
        f"{','.join(DEVELOPMENT_TASKS)}; the others are held out)",
    )  # fmt: skip
    group.add_argument(
        "--replay-seeds", type=int, default=30, help="seeds per strategy and task (30)"
    )
    group.add_argument(
        "--replay-budget", type=int, default=20,
        help="epochs each search trains, in full-length trials (20)",
    )  # fmt: skip
    group.add_argument(
        "--replay-workers", type=int, default=4, help="asynchronous simulated workers (4)"
    )
    group.add_argument(
        "--replay-picture", type=Path, metavar="STEM",
        help="write normalized regret against epochs spent, a line a strategy with its "
        "band, to STEM.html (self-contained) and STEM.png (default: beside --json, its name "
        "without .json)",
    )  # fmt: skip


def add_scale_arguments(parser: cli.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "workers", "section workers: many stand-in workers on one study"
    )
    group.add_argument(
        "--scale-storage",
        help="workers section: the study storage, postgresql://... or grpc://... (a proxy)",
    )
    group.add_argument(
        "--scale-database",
        help="workers section: the PostgreSQL whose connections are counted (default: "
        "--scale-storage, if it is one)",
    )
    group.add_argument("--scale-workers", type=int, default=200, help="workers section (200)")
    group.add_argument("--scale-trials", type=int, default=400, help="workers section (400)")
    group.add_argument(
        "--scale-kills", type=int, default=20, help="workers killed mid-trial (default 20)"
    )


def add_chaos_arguments(parser: cli.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "chaos", "section chaos: a real fleet soaked in faults, then its guarantees checked"
    )
    group.add_argument(
        "--chaos-storage",
        help="chaos section: the PostgreSQL the fleet's proxy serves, postgresql://...",
    )
    group.add_argument(
        "--chaos-minutes", type=float, default=30,
        help="faults are injected for this long, or until the study is done (30)",
    )  # fmt: skip
    group.add_argument("--chaos-trials", type=int, default=600, help="the study's --trials (600)")
    group.add_argument("--chaos-epochs", type=int, default=3, help="the study's --epochs (3)")
    group.add_argument(
        "--chaos-workers", type=int, default=8,
        help="processes in the fleet: one search.run and the rest search.worker (8)",
    )  # fmt: skip
    group.add_argument(
        "--chaos-fault-seconds", type=float, default=15,
        help="mean seconds between faults, exponentially distributed (15)",
    )  # fmt: skip
    group.add_argument(
        "--chaos-hang-minutes", type=float, default=15,
        help="after the faults, how long the fleet may take to finish before the soak calls "
        "it hung (15)",
    )  # fmt: skip
    group.add_argument("--chaos-seed", type=int, default=0, help="the faults' seed (0)")


def parse_counts(text: str, flag: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} takes positive integers like 1,2,4, not '{text}'") from None
    if not counts or min(counts) < 1:
        raise UsageError(f"{flag} takes positive integers like 1,2,4, not '{text}'")
    return counts


def parse_sections(text: str, profile: bool) -> list[str]:
    """The chosen sections in SECTIONS' order, --profile's among them."""
    chosen = {part.strip() for part in text.split(",")} | ({"profile"} if profile else set())
    unknown = sorted(chosen - set(SECTIONS))
    if unknown:
        raise UsageError(f"--sections: unknown {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    if "replay" in chosen and len(chosen) > 1:
        raise UsageError("--sections replay runs alone: it needs no data and no device")
    for alone in ("workers", "chaos"):
        if alone in chosen and len(chosen) > 1:
            raise UsageError(f"--sections {alone} runs alone: it needs no data and no device")
    return [name for name in SECTIONS if name in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    chosen, batch_sizes, workers_per_gpu = checked(args)
    if chosen == ["workers"]:
        return scale_section(args, argv)
    if chosen == ["chaos"]:
        from search.bench import chaos

        cli.check_positive(args, "chaos_minutes", "chaos_trials", "chaos_epochs",
                           "chaos_fault_seconds", "chaos_hang_minutes")  # fmt: skip
        return chaos.main_section(args, argv)
    from registry import files
    from search.bench import sections

    if chosen == ["replay"]:
        bench = replay_setting(args)
        machine = sections.describe_machine(sections.device.resolve("cpu"))
        print(f"search.bench on {machine}; {bench.describe()}", flush=True)
    else:
        bench = sections.prepare(args, chosen, batch_sizes, workers_per_gpu)
        machine = sections.describe_machine(bench.on_device)
        print(
            f"search.bench on {machine}; {bench.dataset.name}, {len(bench.train_set)} "
            f"training images, ResNet-18 width {args.width}",
            flush=True,
        )
    document = {"command": ["python", "-m", "search.bench", *(argv or sys.argv[1:])],
                "machine": machine, "sections": {}}  # fmt: skip

    def record(name: str, entry: dict) -> None:
        document["sections"][name] = entry
        if args.json:
            files.write_text(args.json, json.dumps(document, indent=2) + "\n")

    rows, failed = run_sections(bench, chosen, record)
    print("\n" + sections.format_table(rows))
    print(sections.FOOTNOTE)
    for row in rows:
        if row.detail:
            print(row.detail)
    if failed:
        print(f"search.bench: {len(failed)} section(s) failed: {', '.join(failed)}",
              file=sys.stderr)  # fmt: skip
    return 1 if failed else 0


def checked(args) -> tuple[list[str], list[int], list[int]]:
    """The sections chosen, the batch sizes and the worker counts, every flag checked before
    anything is measured: an hour of it must not end in an unwritable file."""
    chosen = parse_sections(args.sections, args.profile)
    if args.epochs < 2:
        raise UsageError("--epochs must be at least 2: the first epoch is not timed")
    cli.check_positive(args, "width", "seeds", "fast_epochs", "search_trials", "search_epochs",
                       "search_timeout", "bookkeeping_trials", "strategy_epochs",
                       "strategy_budget", "strategy_repeats", "strategy_workers",
                       "transfer_source_budget", "transfer_top", "replay_seeds",
                       "replay_budget", "replay_workers", "record_epochs",
                       "record_configs")  # fmt: skip
    if "transfer" in chosen:
        from search.bench import warm_start

        warm_start.chosen(args.transfer_strategies)
    batch_sizes = parse_counts(args.batch_sizes, "--batch-sizes")
    workers_per_gpu = parse_counts(args.workers_per_gpu, "--workers-per-gpu")
    from registry import files

    if args.json:
        files.check_output(args.json)
    if args.search_storage:
        from search.tuning.store import urls

        urls.check_url(args.search_storage)
    if "record" in chosen:
        from search.bench.replay import recording

        recording.check(args)
    return chosen, batch_sizes, workers_per_gpu


def run_sections(bench, chosen: list[str], record) -> tuple[list, list[str]]:
    """Each chosen section's rows, printed and recorded as they are measured; a section that
    fails is reported and the others run. The rows, and the sections that failed."""
    from search.bench import sections

    # `timeout` (GPU.md's script) ends a section with SIGTERM, which cli.run_main turns into
    # Ctrl-C: the section is recorded as interrupted, with the rows it had measured
    rows, failed = [], []
    for name in chosen:
        found: list[sections.Row] = []
        started = time.perf_counter()
        record(name, outcome("running", started, found))
        try:
            for row in sections.SECTIONS[name](bench):
                if not found:
                    print(sections.TABLE_HEADER, flush=True)
                print(sections.format_row(row), flush=True)
                found.append(row)
                record(name, outcome("running", started, found))
        except KeyboardInterrupt:
            record(name, outcome("interrupted", started, found))
            raise
        except Exception as error:  # noqa: BLE001  one failed section must not lose the rest
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            print(f"search.bench: section {name} failed: {reason}", file=sys.stderr, flush=True)
            failed.append(name)
            record(name, outcome("failed", started, found, error=reason,
                                 traceback=traceback.format_exc()[-4000:]))  # fmt: skip
            continue
        rows += found
        record(name, outcome("done", started, found))
    return rows, failed


def replay_setting(args):
    """The replay section's setting, every name checked before anything runs."""
    from registry import files
    from search.bench.replay import section

    tasks = section.tasks_of(args.benchmark, args.tasks)
    strategies = tuple(part.strip() for part in args.strategies.split(","))
    section.check_strategies(strategies, tasks)
    stem = args.replay_picture or (args.json.with_suffix("") if args.json else None)
    if stem:
        files.check_output(stem.with_suffix(".html"))
        files.check_output(stem.with_suffix(".png"), text=False)
    return section.ReplaySetting(args.benchmark, tasks, strategies, args.replay_seeds,
                                 args.replay_budget, args.replay_workers, stem)  # fmt: skip


def outcome(status: str, started: float, found: list, **more) -> dict:
    """A section's entry in the JSON: its status, seconds so far and the rows it has given."""
    return {"status": status, "seconds": time.perf_counter() - started, **more,
            "rows": [dataclasses.asdict(row) for row in found]}  # fmt: skip


def scale_section(args, argv) -> int:
    """Many stand-in workers on one study (search/bench/scale.py), printed as one line."""
    from registry import files
    from search.bench import scale
    from search.tuning.store import proxy_client

    if not args.scale_storage:
        raise UsageError("--sections workers needs --scale-storage postgresql://... or grpc://...")
    database = args.scale_database or args.scale_storage
    if proxy_client.is_proxy_url(database):
        raise UsageError("--scale-database: the PostgreSQL behind the proxy, to count connections")
    cli.check_positive(args, "scale_workers", "scale_trials")
    result = scale.measure(
        args.scale_storage, database, args.scale_workers, args.scale_trials,
        kills=args.scale_kills,
    )  # fmt: skip
    print(json.dumps(dataclasses.asdict(result)))
    if args.json:
        document = {"command": ["python", "-m", "search.bench", *(argv or sys.argv[1:])],
                    "workers": dataclasses.asdict(result)}  # fmt: skip
        files.write_text(args.json, json.dumps(document, indent=2) + "\n")
    return 0
