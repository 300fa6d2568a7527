"""The scale benchmark's small version (README: Many GPUs, many hosts; BENCHMARKS.md has the
200-worker one): 30 worker processes on the real PostgreSQL, each running the product's own
trial loop, storage and heartbeats around a stand-in objective (scale.py: real workers load
torch, 780 MB each), 4 of them killed with kill -9 mid-trial. 30, not more: their 60
connections leave room under a stock max_connections of 100 for what the rest of the suite
holds (with 40 workers and 22 connections held elsewhere, the workers that could not connect
left killed trials failed and never re-run, and this waited out its timeout)."""

from search.bench import scale
from tests import postgres


def test_thirty_workers_and_four_kills_lose_nothing(tmp_path):
    url = postgres.URL
    result = scale.measure(
        url, url, workers=30, trials=60, kills=4, timeout=600, log_dir=str(tmp_path)
    )
    counts = ("finished", "left_running", "left_waiting", "killed", "killed_requeued",
              "other_workers_failed")  # fmt: skip
    # exactly the target, none lost or left running, every killed trial re-queued, no other
    # worker died
    assert {name: getattr(result, name) for name in counts} == {
        "finished": 60, "left_running": 0, "left_waiting": 0, "killed": 4, "killed_requeued": 4,
        "other_workers_failed": 0,
    }, result  # fmt: skip
    # Each re-run continued after its predecessor's epochs, unless trials numbered before it
    # had met the target by then (claims.claim_or_give_up: exactly 60, never more).
    assert result.killed_resumed + result.killed_not_needed == 4, result
    # Killed mid-trial: after an epoch and before the last of 4; a re-run that resumed went on
    # after the very epoch its predecessor was killed in.
    assert all(1 <= epoch < 4 for epoch in result.killed_at_epoch), result
    for killed, resumed in zip(result.killed_at_epoch, result.resumed_after_epoch, strict=True):
        assert resumed in (0, killed), result  # 0: not needed
    assert 30 <= result.peak_connections <= 2 * 30  # CONNECTIONS_PER_WORKER each
    assert open(result.worker_log).read().count("Traceback") == 0  # the log is kept
