"""`python -m search.train --config best.yaml`: retrain an exported config on train+val and
measure it on the test set (search/training/retrain.py); --attach records the result on the
study it came from."""

from collections.abc import Sequence
from pathlib import Path

from registry import RunFailure, UsageError, files
from search import cli

# A retrain keeps no state between epochs: an interrupted one has written nothing (every file is
# written as it ends) and starts over.
INTERRUPTED = "interrupted; nothing was written: run the same command again to start it over"


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.train",
        description="Retrain an exported config on train+val and report its test accuracy.",
    )
    parser.add_argument("--config", type=Path, required=True, help="YAML from search.export")
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    cli.add_classes_argument(parser, "override the config's classes")
    cli.add_dataset_arguments(parser, dataset=False)
    cli.add_device_argument(parser)
    cli.add_compile_argument(parser)
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="where to write results (default: runs/<config name>, or runs/<config name>-N "
        "if an earlier run is there)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run in --output-dir"
    )
    parser.add_argument(
        "--safetensors",
        action="store_true",
        help="also write model.safetensors and config.json (timm's pretrained_cfg fields: "
        "input size, mean, std, class names) to load the weights elsewhere",
    )
    parser.add_argument(
        "--attach",
        action="store_true",
        help="attach the checkpoint and metrics to the config's source trial as Optuna "
        "artifacts (shown by optuna-dashboard / search.dashboard)",
    )
    cli.add_storage_argument(parser, purpose="with --attach: the ")
    parser.add_argument(
        "--artifact-dir",
        type=Path,
        default=Path("artifacts"),
        help="with --attach: the artifact store folder (default ./artifacts)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from search.training import config, retrain

    trial_config, provenance = config.read_file(args.config)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    if args.classes:
        overrides["classes"] = args.classes
    trial_config = trial_config.replace(**overrides)
    if args.attach:  # before training: a config that names no study fails at once
        from search.tuning.results import artifacts

        with artifacts.source_trial(provenance, args.storage):
            files.check_folder(args.artifact_dir)
    output_dir = retrain.output_folder(args.output_dir, Path("runs") / args.config.stem,
                                       args.overwrite)  # fmt: skip
    reads = [p for p in (args.config, trial_config.init_from) if p]
    retrain.check_outputs(output_dir, reads, args.overwrite)  # its own line for each mistake
    with files.owned(output_dir, "search.train"):  # another retrain there now fails at once
        return retrain_into(args, trial_config, provenance, output_dir, reads)


def retrain_into(args, trial_config, provenance: dict, output_dir: Path, reads: list) -> int:
    from search.training import data, device, retrain
    from search.training.trainer import EpochResult

    # again, now that the folder is this command's: a retrain that ended meanwhile is there
    retrain.check_outputs(output_dir, reads, args.overwrite)
    on_device = device.resolve(args.device)
    dataset = data.load(trial_config.dataset, args.data_dir, classes=trial_config.classes)
    print(
        f"retraining {trial_config.model} on {dataset.name} train+val "
        f"({len(dataset.train) + len(dataset.val)} images) for {trial_config.epochs} epochs on "
        f"{device.describe(on_device)}"
    )

    def show(result: EpochResult) -> bool:
        print(
            f"epoch {result.epoch:3d}/{trial_config.epochs}  train_loss {result.train_loss:.4f}  "
            f"test_accuracy {result.test_accuracy:.4f}  {result.train_seconds:.1f} s",
            flush=True,
        )
        return False

    try:
        done = retrain.retrain(
            trial_config, dataset, on_device, output_dir, provenance, on_epoch=show,
            compile_model=args.compile, safetensors=args.safetensors,
        )  # fmt: skip
    except RuntimeError as error:  # torch.OutOfMemoryError is one
        if not device.is_out_of_memory(error):
            raise
        raise RunFailure(
            f"out of memory on {device.describe(on_device)} training {trial_config.model} "
            f"{trial_config.model_args}: a smaller model or batch size, or another --device "
            f"({str(error).splitlines()[0][:200]})"
        ) from None
    print(done.report)
    if args.compile:
        print(f"torch.compile took {done.metrics['compile_seconds']:.1f} s (not in the epochs)")
    print(f"test accuracy {done.metrics['test_accuracy']:.4f}")
    written = [
        *retrain.OUTPUTS,
        *(["model.safetensors", "config.json"] if args.safetensors else []),
    ]
    print(f"wrote {output_dir}/: {', '.join(written)}")
    if args.attach:
        from search.tuning.results import artifacts

        paths = [output_dir / name for name in retrain.OUTPUTS if name != "config.yaml"]
        try:
            with artifacts.source_trial(provenance, args.storage) as destination:
                artifacts.attach(paths, *destination, args.artifact_dir)
        except UsageError as error:  # the retrain is saved: say so, and what did not work
            raise RunFailure(f"{error}; the retrain itself is saved in {output_dir}") from None
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.train", INTERRUPTED)
