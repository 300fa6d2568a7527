"""The scale benchmark's small version (README: Many GPUs, many hosts; BENCHMARKS.md has the
200-worker one): 12 worker processes on the real PostgreSQL, each running the product's own
trial loop, storage and heartbeats around a stand-in objective (scale.py: real workers load
torch, 780 MB each), 3 of them killed with kill -9 mid-trial. 12, not 30 as until the morning
of 2026-12-07 nor 16 as until its evening: each is an interpreter that imports Optuna and
SQLAlchemy, and on 2 cores 30 of them took 38 s to 4 minutes of the suite's 10, 16 of them 23
to 34 s; 12 on 2 cores still race for every claim (at most 24 of the server's 100
connections)."""

from search.bench import scale
from tests import postgres


def test_twelve_workers_and_three_kills_lose_nothing(tmp_path):
    url = postgres.URL
    # a killed worker's trial is stale after 6 s without a heartbeat, as in tests/test_worker.py
    result = scale.measure(
        url,
        url,
        workers=12,
        trials=24,
        kills=3,
        grace_period=6,
        timeout=600,
        log_dir=str(tmp_path),
    )
    counts = ("finished", "left_running", "left_waiting", "killed", "killed_requeued",
              "other_workers_failed")  # fmt: skip
    # exactly the target, none lost or left running, every killed trial re-queued, no other
    # worker died
    assert {name: getattr(result, name) for name in counts} == {
        "finished": 24, "left_running": 0, "left_waiting": 0, "killed": 3, "killed_requeued": 3,
        "other_workers_failed": 0,
    }, result  # fmt: skip
    # Each re-run continued after its predecessor's epochs, unless trials numbered before it
    # had met the target by then (claims.claim_or_give_up: exactly 24, never more).
    assert result.killed_resumed + result.killed_not_needed == 3, result
    # Killed mid-trial: after an epoch and before the last of 4; a re-run that resumed went on
    # after the very epoch its predecessor was killed in.
    assert all(1 <= epoch < 4 for epoch in result.killed_at_epoch), result
    for killed, resumed in zip(result.killed_at_epoch, result.resumed_after_epoch, strict=True):
        assert resumed in (0, killed), result  # 0: not needed
    assert 12 <= result.peak_connections <= 2 * 12  # CONNECTIONS_PER_WORKER each
    assert open(result.worker_log).read().count("Traceback") == 0  # the log is kept
