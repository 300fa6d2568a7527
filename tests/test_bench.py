"""search.bench end to end at tiny size on the CPU: every section, real processes for the
searches, the figures consistent with each other."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from search import bench, cli
from tests.conftest import REPO

TINY = [
    "--dataset", "sample", "--device", "cpu", "--images", "256", "--epochs", "2", "--width", "8",
    "--loader-workers", "1", "--batch-sizes", "64,128", "--seeds", "1", "--fast-epochs", "2",
    "--fast-width", "8",
    "--search-space", "mlp", "--search-trials", "2", "--search-epochs", "1",
    # one worker: search.run in one process. Two added two more interpreters, 13 s of the
    # test's 35 here; spawning workers is test_worker's, at 8.
    "--workers-per-gpu", "1",
]  # fmt: skip


def test_the_bench_times_every_section_side_by_side(tmp_path, run_here):
    result = run_here("search.bench", *TINY, "--json", "bench.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sections = json.loads((tmp_path / "bench.json").read_text())["sections"]
    assert list(sections) == ["plain", "trainer", "fast", "search"]
    assert {section["status"] for section in sections.values()} == {"done"}
    rows = [row for section in sections.values() for row in section["rows"]]
    assert [row["what"] for row in rows] == [
        "ResNet-18, plain DataLoader", "ResNet-18, our trainer", "ResNet-18, our trainer",
        "fast space, default config", "mlp search",
    ]  # fmt: skip
    plain, *trainer = rows[:3]
    assert plain["speedup"] == 1.0
    for row, batch_size in zip(trainer, (64, 128), strict=True):
        assert row["figures"]["batch_size"] == batch_size
        speedup = plain["figures"]["seconds_per_epoch"] / row["figures"]["seconds_per_epoch"]
        assert row["speedup"] == pytest.approx(speedup)
    fast = rows[3]["figures"]
    assert fast["epochs"] == 2 and len(fast["test_accuracy"]) == 1
    assert fast["training_seconds"][0] > 0
    # one step an epoch at this size, so near chance: what is checked is that the table shows
    # the accuracy the run measured, as a share of the sample's 1,000 test images
    accuracy = fast["test_accuracy"][0]
    assert f"test accuracy {accuracy:.2%}" in result.stdout
    assert accuracy * 1000 == pytest.approx(round(accuracy * 1000))
    search = rows[4]["figures"]
    assert (search["workers_per_gpu"], search["trials"], search["epochs"]) == (1, 2, 2)
    assert search["trials_per_hour"] == pytest.approx(2 / search["seconds"] * 3600)
    assert search["gpu_busy"] is None  # no GPU here: n/a, not a made-up figure
    table = result.stdout.splitlines()  # each section's rows as it ends, then all of them
    assert table[1] == "| what | setting | result | speed-up |"
    assert sum(line.startswith("| ResNet-18") for line in table) == 6
    assert "GPU busy n/a" in result.stdout


def test_sections_run_alone_without_speedups(capsys):
    assert bench.main([*TINY, "--sections", "trainer"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ResNet")]
    assert len(rows) == 4 and all(row.endswith("|  |") for row in rows)


def test_a_failed_section_is_reported_and_the_others_kept(tmp_path, run_here):
    """The search section fails (a space that does not exist): the fast section's rows are
    in the JSON, written as it ended, the search is marked failed with its reason in one line
    on stderr, and the exit code says so."""
    result = run_here(
        "search.bench", *TINY, "--sections", "fast,search", "--search-space", "nosuch",
        "--json", "bench.json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    sections = json.loads((tmp_path / "bench.json").read_text())["sections"]
    assert sections["fast"]["status"] == "done"
    assert sections["fast"]["rows"][0]["what"] == "fast space, default config"
    assert sections["search"]["status"] == "failed" and "nosuch" in sections["search"]["error"]
    failures = [line for line in result.stderr.splitlines() if "section search failed" in line]
    assert len(failures) == 1 and "nosuch" in failures[0]
    assert "Traceback" not in result.stderr
    assert "| fast space, default config |" in result.stdout


def test_the_command_names_every_section_the_bench_runs_in_its_order():
    """search.bench lists the sections itself (its --help loads no torch): the same names, in
    the order search/bench/sections.py runs them, then the stand-in workers and the chaos
    soak, which run alone."""
    from search.bench import sections

    assert bench.SECTIONS == (*sections.SECTIONS, "workers", "chaos")


def test_bookkeeping_runs_a_worker_s_trials_without_training_and_times_each_part(tmp_path):
    """Real storage writes of the fast space's parameters, reports and tells in a real study;
    one window per `every` trials; the collection after each trial runs as in a worker."""
    import optuna

    from search.bench import bookkeeping

    storage = f"sqlite:///{tmp_path / 'bk.db'}"
    windows = bookkeeping.measure("fast", storage, trials=5, epochs=3, every=2)
    assert [window.trials for window in windows] == [2, 4, 5]
    for window in windows:
        parts = [getattr(window, phase) for phase in bookkeeping.PHASES]
        assert all(part > 0 for part in parts) and window.total == pytest.approx(sum(parts))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert len(study.trials) == 5 and all(t.state.is_finished() for t in study.trials)
    assert all("lr_per_1024" in t.params for t in study.trials)  # the fast space's own


def test_a_section_cut_off_by_sigterm_keeps_the_rows_it_had_measured(tmp_path):
    """What `timeout` does to a section in GPU.md's script: SIGTERM once the ops section has
    counted its first config. The JSON says the section was interrupted and holds that row,
    the table printed it as it came, and the command ends as Ctrl-C ends it."""
    command = [sys.executable, "-m", "search.bench", *TINY, "--sections", "ops",
               "--json", "bench.json"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip

    def rows_so_far() -> list:
        try:
            return json.loads((tmp_path / "bench.json").read_text())["sections"]["ops"]["rows"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):  # not yet, or mid-write
            return []

    while not rows_so_far() and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=600)
    assert process.returncode == cli.EXIT_INTERRUPTED, err
    section = json.loads((tmp_path / "bench.json").read_text())["sections"]["ops"]
    assert section["status"] == "interrupted"
    assert section["rows"][0]["what"] == "operators per step: ResNet-18, batch 64"
    assert len(section["rows"]) < 8  # cut off: 8 configs in all
    assert "| operators per step: ResNet-18, batch 64 |" in out
    assert "Traceback" not in err


# A network that trains in a fraction of a second an epoch: no augmentation (the rotations
# and perspective of a random config took 3-7 s an epoch here), large batches, two classes
# (a fifth of the sample); what the tests check is the section's accounting, not the search
CHEAP = ("image_size=0,width=128,depth=1,batch_size=512,flip=False,vflip=False,"
         "resized_crop_scale=1.0,crop_padding=0,geometric=none,perspective_distortion=0.0,"
         "jitter=0.0,grayscale_p=0.0,cutout_size=0,mask_block=0,mixing=none")  # fmt: skip
TWO_CLASSES = ["--strategy-classes", "ship,truck"]
STRATEGIES_TINY = [
    "--dataset", "sample", "--device", "cpu", "--sections", "strategies",
    "--strategies", "random,tpe-hyperband-pause", "--strategy-fix", CHEAP,
    "--strategy-epochs", "2", "--strategy-budget", "6", "--strategy-repeats", "2",
    "--strategy-workers", "1", *TWO_CLASSES,
]  # fmt: skip


def test_the_strategies_are_compared_at_an_equal_budget_in_epochs(tmp_path, run_here):
    """Two strategies, two seeds each, real search.run processes: every search trains its
    budget (and at most a trial's epochs more, the trial in flight), its best found only
    improves as the budget is spent, random's final best is the mean of its seeds', and each
    winner was retrained and scored on the test set."""
    result = run_here("search.bench", *STRATEGIES_TINY, "--json", "s.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "s.json").read_text())["sections"]["strategies"]["rows"]
    assert [row["what"] for row in rows] == [
        "strategy: random", "strategy: tpe-hyperband-pause"
    ]  # fmt: skip
    random_finals = [s["best_val"]["1.0"] for s in rows[0]["figures"]["searches"]]
    for row in rows:
        figures = row["figures"]
        assert figures["reference_final"] == pytest.approx(sum(random_finals) / 2)
        assert [s["seed"] for s in figures["searches"]] == [0, 1]
        for search in figures["searches"]:
            assert 6 <= search["epochs"] <= 6 + 2
            best = [search["best_val"][f] for f in ("0.25", "0.5", "1.0")]
            assert all(b is not None for b in best) and best == sorted(best)
            assert 0 < search["test_accuracy"] < 1 and search["continued"] >= 0
            reached = search["epochs_to_reference"]
            assert reached is None or reached <= search["epochs"]
    assert "| strategy: random | --sampler random --pruner none;" in result.stdout


def test_pbt_is_a_row_of_the_strategy_table(tmp_path, run_here):
    """Issue 31's population-based training as a row of the strategy table, one seed, a real
    search.run process: its population fills the budget exactly (members x epochs) and its
    networks are whole only at the end. (The warm start's strategy, tpe-hyperband-warm, runs
    in the transfer section's test: the same run_source and flags_of.)"""
    args = [*STRATEGIES_TINY[:6], "--strategies", "pbt", "--strategy-fix", CHEAP,
            "--strategy-epochs", "2", "--strategy-budget", "6", "--strategy-repeats", "1",
            "--strategy-workers", "1", *TWO_CLASSES]  # fmt: skip
    result = run_here("search.bench", *args, "--json", "s.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "s.json").read_text())["sections"]["strategies"]["rows"]
    assert [row["what"] for row in rows] == ["strategy: pbt"]
    pbt = rows[0]["figures"]["searches"][0]
    assert pbt["epochs"] == 6 and pbt["trials"] == 3 * 2  # 3 members, an interval of 1 epoch
    assert pbt["best_val"]["0.5"] is None and 0 < pbt["best_val"]["1.0"] < 1
    assert 0 < pbt["test_accuracy"] < 1  # the winner's schedule retrained
    assert "--scheduler pbt --population 3;" in rows[0]["setting"]


def test_the_pareto_section_compares_moasha_with_no_pruning_at_an_equal_budget(tmp_path, run_here):
    """One seed each, real search.run processes with two objectives, accuracy and a latency
    measured as each network starts (the section runs `accuracy,params` the same way, through
    search.run's --objectives, which test_run covers with both): each search trains its
    budget, its hypervolume only grows as the budget is spent, and both rows measure from one
    reference point."""
    objectives = "accuracy,latency"
    args = [*STRATEGIES_TINY[:5], "pareto", "--strategy-fix", CHEAP.replace("width=128,", ""),
            "--strategy-epochs", "2", "--strategy-budget", "6", "--strategy-repeats", "1",
            "--strategy-workers", "1", "--pareto-objectives", objectives, *TWO_CLASSES]  # fmt: skip
    result = run_here("search.bench", *args, "--json", "p.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "p.json").read_text())["sections"]["pareto"]["rows"]
    assert [row["what"] for row in rows] == ["pareto: none", "pareto: moasha"]
    assert rows[0]["figures"]["reference"] == rows[1]["figures"]["reference"]
    for row in rows:
        volumes = [row["figures"]["hypervolume"][f][0] for f in ("0.25", "0.5", "1.0")]
        assert volumes == sorted(volumes) and volumes[-1] > 0
        assert row["figures"]["searches"][0]["trials"] >= 3
    assert rows[0]["figures"]["searches"][0]["pruned"] == 0  # none prunes nothing
    assert f"| pareto: moasha | --objectives {objectives} --sampler tpe --pruner moasha;" in (
        result.stdout
    )


def test_the_transfer_section_compares_a_warm_start_with_a_cold_one(tmp_path, run_here):
    """One earlier study of other classes, then one seed each of the target searched cold and
    warm-started from it, real search.run processes: each search trains its budget, its best
    only improves as the budget is spent, both rows measure against the cold search's final
    best, and the warm row says where it started from (test_transfer.py checks what a warm
    start queues and searches)."""
    args = [*STRATEGIES_TINY[:5], "transfer", "--strategy-fix", CHEAP,
            "--strategy-epochs", "2", "--strategy-budget", "6", "--strategy-repeats", "1",
            "--strategy-workers", "1", "--transfer-source-budget", "6", "--transfer-top", "2",
            *TWO_CLASSES, "--transfer-source-classes", "airplane,automobile",
            "--transfer-strategies", "default,default-prior"]  # fmt: skip
    result = run_here("search.bench", *args, "--json", "t.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "t.json").read_text())["sections"]["transfer"]["rows"]
    assert [row["what"] for row in rows] == ["transfer: default", "transfer: default-prior"]
    cold_final = rows[0]["figures"]["searches"][0]["best_val"]["1.0"]
    for row in rows:
        assert row["figures"]["reference_final"] == pytest.approx(cold_final)
        search = row["figures"]["searches"][0]
        assert 6 <= search["epochs"] <= 6 + 2
        best = [search["best_val"][f] for f in ("0.25", "0.5", "1.0")]
        # the default's first trials wait at epoch 1: by 25% nothing may have finished
        found = [b for b in best if b is not None]
        assert best[-1] is not None and found == sorted(found)
    source = (
        "--warm-start-from (a study of --classes airplane,automobile, budget 6 epochs, not charged)"
    )
    assert source in rows[1]["setting"] and "--warm-start-by prior" in rows[1]["setting"]
