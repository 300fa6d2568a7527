"""`python -m search.final --study NAME --top 3 --seeds 3`: retrain a study's top trials with
several seeds each and rank them by their mean validation accuracy (search/tuning/results/seed_selection.py);
search.export then exports the winner."""

from collections.abc import Sequence

from search import cli


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.final",
        description="Choose a study's winner over several seeds: retrain its top K trials with "
        "S seeds each, rank them by mean validation accuracy, record the table on the study.",
    )
    cli.add_study_arguments(parser)
    parser.add_argument("--top", type=int, default=3, help="trials to retrain (default 3)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per trial (default 3)")
    cli.add_dataset_arguments(parser, dataset=False)
    cli.add_device_argument(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    cli.check_positive(args, "top", "seeds")
    from search.training import data, device
    from search.tuning import study
    from search.tuning.results import progress, seed_runs, seed_selection
    from search.tuning.store import storage

    with storage.kept_open(args.storage, create=False) as opened:
        found = study.load(opened, args.study)
        settings = study.settings_of(found)  # a study search.run did not make, or cannot run
        seed_selection.top_trials(
            found, args.top
        )  # no complete trial, or several objectives: fail now
        on_device = device.resolve(args.device)
        dataset = data.load(settings.dataset, args.data_dir, classes=settings.classes)

        def show(run: seed_runs.Run) -> None:
            print(
                f"trial {run.trial} seed {run.seed}: val_accuracy {run.val_accuracy:.4f}  "
                f"test_accuracy {run.test_accuracy:.4f}",
                flush=True,
            )

        runs = seed_runs.retrain_top(found, dataset, on_device, args.top, args.seeds, show)
        rows = seed_selection.rank(found, runs)
        seed_selection.record(found, rows)
        print(seed_selection.format_table(rows))
        export = progress.export_command(args.study, args.storage, ["-o", "best.yaml"])
        print(f"winner: trial {rows[0]['trial']}; export it with {export}")
        return 0


if __name__ == "__main__":
    cli.run_main(main, "search.final")
