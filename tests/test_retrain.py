"""What a retrain leaves, as search.train writes it: the checkpoint, history.csv, report.html,
a fresh folder per run, and on request safetensors weights with a timm-style config."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys

import torch
import yaml
from safetensors.torch import load_file

from search.training import checkpoint
from tests.conftest import REPO

CONFIG = {"model": "mlp", "model_args": {"width": 16, "depth": 1}, "epochs": 2,
          "dataset": "sample", "schedule": "cosine", "lr": 0.05}  # fmt: skip


def test_a_retrain_writes_its_history_its_page_and_a_fresh_folder_each_time(tmp_path, run_here):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))
    first = run_here("search.train", "--config", "tiny.yaml", "--safetensors", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_here("search.train", "--config", "tiny.yaml", "--epochs", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "wrote runs/tiny-1/" in again.stdout  # the first run is kept
    folder = tmp_path / "runs" / "tiny"
    metrics = json.loads((folder / "metrics.json").read_text())
    with (folder / "history.csv").open() as opened:
        rows = list(csv.DictReader(opened))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert list(rows[0]) == ["epoch", "train_loss", "test_accuracy", "test_loss", "lr", "seconds"]
    assert float(rows[-1]["test_accuracy"]) == metrics["test_accuracy"]
    assert float(rows[0]["lr"]) > float(rows[1]["lr"]) == 0.0  # cosine to zero at the end
    page = (folder / "report.html").read_text()
    for heading in ("Learning curves", "Confusion matrix", "Accuracy per class"):
        assert f"<h2>{heading}" in page
    assert page.count('class="plotly-graph-div"') == 3 and "<script src=" not in page
    saved = checkpoint.read(folder / "checkpoint.pt")
    weights = load_file(str(folder / "model.safetensors"))
    assert weights.keys() == saved.weights.keys()
    assert all(torch.equal(weights[name], saved.weights[name]) for name in weights)
    described = json.loads((folder / "config.json").read_text())
    assert described["input_size"] == [3, 32, 32] and described["num_classes"] == 10
    assert described["label_names"][0] == "airplane" and len(described["mean"]) == 3
    assert described["mean"] == saved.normalization["mean"]

    refused = run_here("search.train", "--config", "tiny.yaml", "--output-dir", "runs/tiny",
                       cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "pass --overwrite" in refused.stderr
    assert json.loads((folder / "metrics.json").read_text()) == metrics  # untouched


def test_sigterm_ends_a_retrain_with_its_line_and_code_130_having_written_nothing(tmp_path):
    """What Slurm or Kubernetes send before they kill, as Ctrl-C: one line that says the
    retrain starts over (it keeps no state between epochs), 130, and no output files. Sent
    once the first epoch is under way (its line is printed), not after a guessed delay."""
    (tmp_path / "long.yaml").write_text(yaml.safe_dump({**CONFIG, "epochs": 500}))
    retrain = subprocess.Popen(
        [sys.executable, "-m", "search.train", "--config", "long.yaml", "--output-dir", "out"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        while not retrain.stdout.readline().startswith("epoch   1/500"):
            pass
        retrain.send_signal(signal.SIGTERM)
        _, err = retrain.communicate(timeout=600)
    finally:
        retrain.kill()
    assert retrain.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        "search.train: interrupted; nothing was written: run the same command again to start "
        "it over"
    )
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_two_retrains_into_one_folder_at_once_cannot_both_succeed(tmp_path, run_here):
    """While one retrain writes runs/tiny (its lock held here, as that process holds it), a
    second into the same folder fails at once with one line; a lock whose process is gone
    (killed) does not stop the next one."""
    from registry import files

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**CONFIG, "epochs": 1}))
    folder = tmp_path / "runs" / "tiny"
    with files.owned(folder, "search.train"):
        second = run_here("search.train", "--config", "tiny.yaml", "--output-dir", "runs/tiny",
                          cwd=tmp_path)  # fmt: skip
    assert second.returncode == 2
    assert second.stderr.strip() == (
        f"search.train: error: runs/tiny is being written by another search.train (pid "
        f"{os.getpid()} on {socket.gethostname()}); wait for it to end, or choose "
        "another folder"
    )
    assert not (folder / "checkpoint.pt").exists()
    (folder / ".lock").write_text(f"999999999 {socket.gethostname()} search.train")
    after_a_kill = run_here("search.train", "--config", "tiny.yaml", "--output-dir", "runs/tiny",
                            cwd=tmp_path)  # fmt: skip
    assert after_a_kill.returncode == 0, after_a_kill.stderr
    assert (folder / "checkpoint.pt").exists() and not (folder / ".lock").exists()
