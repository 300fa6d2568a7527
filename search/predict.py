"""`python -m search.predict --checkpoint runs/best/checkpoint.pt IMAGE...`: classify images."""

from collections.abc import Sequence
from pathlib import Path

from registry import UsageError
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
    import torch

    from search.training import checkpoint, data, device

    on_device = device.resolve(args.device)
    loaded = checkpoint.load(args.checkpoint, on_device)
    decoded = []
    for path in args.images:  # each resized to what the network was trained on
        try:
            encoded = path.read_bytes()
        except OSError as error:  # missing, a folder, or unreadable
            raise UsageError(f"cannot read image {path}: {error.strerror}") from None
        decoded.append(data.decode_image(encoded, size=loaded.image_shape[1:], name=str(path)))
    probabilities = loaded.predict_probabilities(torch.stack(decoded).to(on_device))
    top = min(max(1, args.top), len(loaded.classes))
    values, indices = probabilities.topk(top, dim=1)
    for path, row_values, row_indices in zip(
        args.images, values.tolist(), indices.tolist(), strict=True
    ):
        shown = ", ".join(
            f"{loaded.classes[i]} {p:.3f}" for p, i in zip(row_values, row_indices, strict=True)
        )
        print(f"{path}: {shown}")
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.predict")
