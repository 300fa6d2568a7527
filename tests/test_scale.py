"""The scale benchmark's small version (README: Many GPUs, many hosts; BENCHMARKS.md has the
200-worker one): 40 worker processes on the real PostgreSQL, each running the product's own
trial loop, storage and heartbeats around a stand-in objective (scale.py: real workers load
torch, 780 MB each), 4 of them killed with kill -9 mid-trial."""

from search.tuning import scale

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def test_forty_workers_and_four_kills_lose_nothing():
    result = scale.measure(POSTGRES, POSTGRES, workers=40, trials=80, kills=4)
    counts = ("finished", "left_running", "left_waiting", "killed", "killed_requeued",
              "other_workers_failed")  # fmt: skip
    # exactly the target, none lost or left running, every killed trial re-queued, no other
    # worker died
    assert {name: getattr(result, name) for name in counts} == {
        "finished": 80, "left_running": 0, "left_waiting": 0, "killed": 4, "killed_requeued": 4,
        "other_workers_failed": 0,
    }, result  # fmt: skip
    # Each re-run continued after its predecessor's epochs, unless trials numbered before it
    # had met the target by then (trial_loop.claim_or_give_up: exactly 80, never more).
    assert result.killed_resumed + result.killed_not_needed == 4, result
    assert result.peak_connections <= 2 * 40 + 2  # CONNECTIONS_PER_WORKER, and the parent's
