"""The Python API as README shows it: its example runs as it is, in a notebook's process."""

import re

import pytest
from PIL import Image

from registry import UsageError
from search import api
from tests.conftest import REPO


def readme_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Python API") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_example_runs_and_returns_what_it_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (32, 32), (40, 160, 40)).save(tmp_path / "frog.png")
    names: dict = {}
    exec(readme_example(), names)  # noqa: S102  (our own README's code)
    study, trained = names["study"], names["trained"]
    assert len(study.trials) == 3 and study.best_trial.params["width"] == 128
    assert list(names["frame"]["user_attrs_config.model_args"])[0]["width"] == 128
    assert 0 <= trained.metrics["test_accuracy"] <= 1
    assert (tmp_path / "runs/best/history.csv").read_text().startswith("epoch,train_loss,")
    ranked = api.predict(names["checkpoint"], [tmp_path / "frog.png"], top=3)
    assert len(ranked[0]) == 3 and 0 < sum(p for _, p in ranked[0]) <= 1 + 1e-6
    assert ranked[0][0][1] >= ranked[0][1][1] >= ranked[0][2][1]  # most likely first
    assert "[[(" in capsys.readouterr().out


def test_a_mistake_raises_the_line_the_command_would_print(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="unknown space 'resnett'"):
        api.search("resnett", dataset="sample")
    with pytest.raises(UsageError, match="'model_args.width' must be greater than 0"):
        api.train({"model": "mlp", "model_args": {"width": 0}, "dataset": "sample"})
    assert list(tmp_path.iterdir()) == []  # nothing was written
    with pytest.raises(UsageError, match="unknown option workers; the options are search.run's"):
        api.search("mlp", dataset="sample", workers=2)


def test_search_takes_python_values_where_the_command_takes_text(tmp_path, monkeypatch):
    """Lists, mappings and tuples as they are (no flags are built from them), recorded on the
    study as search.run records its flags' values; create_only starts no worker."""
    monkeypatch.chdir(tmp_path)
    created = api.search(
        "mlp", dataset="sample", epochs=1, trials=1, storage="sqlite:///api.db",
        create_only=True, objectives=("accuracy", "params"), classes=["cat", "dog"],
        fix={"image_size": 0}, pruner="none",
    )  # fmt: skip
    attrs = created.user_attrs
    assert attrs["objectives"] == ["accuracy", "params"] and attrs["classes"] == ["cat", "dog"]
    assert attrs["fixed_params"] == {"image_size": 0} and created.trials == []
    assert len(created.directions) == 2
