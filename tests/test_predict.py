"""A checkpoint classifies image files exactly as the model did in memory."""

import numpy as np
import torch
from PIL import Image

from search.training import checkpoint, evaluation
from search.training.config import TrialConfig
from search.training.trainer import train

CONFIG = TrialConfig(
    model="resnet9",
    model_args={"width": 8},
    optimizer="sgd",
    lr=0.2,
    schedule="onecycle",
    batch_size=256,
    epochs=1,
    augment={"flip": {}},
    dataset="sample",
)


def test_saved_checkpoint_predicts_like_the_model_in_memory(sample, tmp_path, run_here):
    cpu = torch.device("cpu")
    result = train(CONFIG, sample.train, sample.val, sample.num_classes, cpu)
    checkpoint.write(tmp_path / "checkpoint.pt", checkpoint.SavedNetwork.of(
        result.model, result.normalization, CONFIG, sample.classes, sample.image_shape
    ))  # fmt: skip
    images = sample.test.images[:12]
    paths = []
    for index, image in enumerate(images):  # PNG is lossless: the files hold these exact pixels
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(paths[-1])
    in_memory = evaluation.predict_probabilities(result.model, images, result.preprocess)
    expected = [sample.classes[i] for i in in_memory.argmax(1).tolist()]

    output = run_here("search.predict", "--checkpoint", "checkpoint.pt",
                      *[p.name for p in paths], cwd=tmp_path)  # fmt: skip
    assert output.returncode == 0, output.stderr
    lines = output.stdout.splitlines()
    assert [line.split(": ")[1].split()[0] for line in lines] == expected
    assert [line.split(": ")[0] for line in lines] == [p.name for p in paths]
    probabilities = [float(line.split()[-1]) for line in lines]
    assert np.allclose(probabilities, in_memory.max(1).values.numpy(), atol=1e-3)

    reloaded = checkpoint.load(tmp_path / "checkpoint.pt", cpu)
    assert reloaded.config == CONFIG and reloaded.classes == sample.classes


def test_predict_resizes_other_sizes_and_shows_the_top_classes(sample, tmp_path, run_here):
    cpu = torch.device("cpu")
    result = train(CONFIG.replace(epochs=1), sample.train, sample.val, 10, cpu)
    checkpoint.write(tmp_path / "c.pt", checkpoint.SavedNetwork.of(
        result.model, result.normalization, CONFIG, sample.classes, (3, 32, 32)
    ))  # fmt: skip
    Image.fromarray(np.zeros((64, 48, 3), dtype=np.uint8)).save(tmp_path / "big.jpg")
    output = run_here("search.predict", "--checkpoint", "c.pt", "big.jpg", "--top", "3",
                      cwd=tmp_path)  # fmt: skip
    assert output.returncode == 0, output.stderr
    assert output.stdout.startswith("big.jpg: ") and output.stdout.count(",") == 2


def test_predict_refuses_a_missing_checkpoint_or_image(tmp_path, run_here):
    (tmp_path / "not-an-image.png").write_text("hello")
    for args, message in (
        (["--checkpoint", "none.pt", "x.png"], "no checkpoint at none.pt"),
        (["--checkpoint", "not-an-image.png", "x.png"], "is not a checkpoint written by"),
    ):
        output = run_here("search.predict", *args, cwd=tmp_path)
        assert output.returncode == 2
        assert len(output.stderr.strip().splitlines()) == 1 and message in output.stderr
