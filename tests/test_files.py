"""Writing outputs: atomically, and never over what a command reads."""

import sqlite3

import pytest

from registry import RunFailure, UsageError, files


def test_an_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    target = tmp_path / "best.yaml"
    target.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_path(target) as partial:
            partial.write_text("half of the new")
            raise KeyboardInterrupt  # Ctrl-C in the middle of writing
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.yaml"]
    files.write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert oct(target.stat().st_mode & 0o777) != "0o600"  # readable as any file the user writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.yaml"]


def test_a_failed_write_is_one_runtime_line(tmp_path):
    with pytest.raises(RunFailure, match="cannot write .*missing/x.yaml"):
        files.write_text(tmp_path / "missing" / "x.yaml", "x")


def test_outputs_never_go_over_a_storage_a_checkpoint_or_an_input(tmp_path):
    with sqlite3.connect(tmp_path / "studies.db") as database:
        database.execute("CREATE TABLE t (a)")
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 torch's zip")
    (tmp_path / "in.yaml").write_text("model: mlp\n")
    with pytest.raises(UsageError, match="it is an SQLite database"):
        files.check_output(tmp_path / "studies.db", text=False)
    with pytest.raises(UsageError, match="it is a zip archive"):
        files.check_output(tmp_path / "checkpoint.pt")
    files.check_output(tmp_path / "checkpoint.pt", text=False)  # a new checkpoint may replace it
    with pytest.raises(UsageError, match="over the file this command reads"):
        files.check_output(tmp_path / "in.yaml", reads=[tmp_path / "in.yaml"])
    files.check_output(tmp_path / "in.yaml")  # an ordinary re-export
    files.check_output(tmp_path / "new" / "deep" / "out.html")
    assert (tmp_path / "new" / "deep").is_dir()
