import pytest

from search.tuning.execution import launch


@pytest.mark.parametrize("count", [1, 3, 16])
def test_workers_per_gpu_plans_that_many_worker_processes(count):
    slots = launch.plan_slots("cpu", None, count)
    assert slots == [launch.Slot("cpu", None)] * count
    commands = [
        launch.worker_command("s", "sqlite:///s.db", "data", slot, number, None)
        for number, slot in enumerate(slots)
    ]
    assert [command[command.index("--slot") + 1] for command in commands] == [
        str(number) for number in range(count)
    ]


def test_cpu_workers_share_the_cores_instead_of_each_taking_all(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = launch.worker_environment(launch.Slot("cpu", None), count=64)
    assert env["OMP_NUM_THREADS"] == "1"


def test_gpu_workers_share_the_cores_too_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(launch.os, "cpu_count", lambda: 16)
    env = launch.worker_environment(launch.Slot("cuda", 1), count=4)
    assert env["OMP_NUM_THREADS"] == "4"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert launch.worker_environment(launch.Slot("cuda", 1), count=4)["OMP_NUM_THREADS"] == "2"


def test_a_gpu_slot_is_pinned_to_its_gpu():
    env = launch.worker_environment(launch.Slot("cuda", 3), count=4)
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
