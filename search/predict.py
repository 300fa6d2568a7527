"""`python -m search.predict --checkpoint runs/best/checkpoint.pt IMAGE...`: classify images."""

from collections.abc import Sequence
from pathlib import Path

from search import cli


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.predict",
        description="Classify image files with a checkpoint written by search.train.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.pt file")
    parser.add_argument("images", type=Path, nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--top", type=int, default=1, help="classes to show per image (default 1)")
    cli.add_device_argument(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    cli.check_positive(args, "top")
    from search.training import checkpoint, device

    loaded = checkpoint.load(args.checkpoint, device.resolve(args.device))
    for path, ranked in zip(args.images, loaded.classify(args.images, args.top), strict=True):
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in ranked))
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.predict")
