"""`python -m search.predict --checkpoint runs/best/checkpoint.pt IMAGE...`: classify images."""

from collections.abc import Sequence
from pathlib import Path

import torch

from search import checkpoint, cli, data, device, evaluation
from search.errors import UsageError
from search.train import make_autocast, make_normalizer


def get_args_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(
        prog="python -m search.predict",
        description="Classify image files with a checkpoint written by search.train.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint.pt file")
    parser.add_argument("images", type=Path, nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--top", type=int, default=1, help="classes to show per image (default 1)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    return parser


def read_images(paths: Sequence[Path], image_shape: tuple[int, int, int]) -> torch.Tensor:
    """uint8 [N, C, H, W], each image resized to what the network was trained on."""
    decoded = []
    for path in paths:
        try:
            decoded.append(data.decode_image(path.read_bytes(), size=image_shape[1:]))
        except OSError as error:  # missing, unreadable, or not an image PIL knows
            raise UsageError(f"cannot read image {path}: {error}") from None
    return torch.stack(decoded)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    on_device = device.resolve(args.device)
    model, saved = checkpoint.load(args.checkpoint, on_device)
    images = read_images(args.images, tuple(saved["image_shape"])).to(on_device)
    image_size = saved["config"].get("image_size", 0)
    normalize = make_normalizer(saved["normalization"], on_device, image_size)
    probabilities = evaluation.predict_probabilities(
        model, images, normalize, make_autocast(on_device), saved["config"].get("tta", "none")
    )
    top = min(max(1, args.top), len(saved["classes"]))
    values, indices = probabilities.topk(top, dim=1)
    for path, row_values, row_indices in zip(
        args.images, values.tolist(), indices.tolist(), strict=True
    ):
        shown = ", ".join(
            f"{saved['classes'][i]} {p:.3f}" for p, i in zip(row_values, row_indices, strict=True)
        )
        print(f"{path}: {shown}")
    return 0


if __name__ == "__main__":
    cli.run_main(main, "search.predict")
