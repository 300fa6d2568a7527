import pytest
import torch

from search.bench.utilization import UtilizationSampler, busy_fraction


def test_busy_fraction_counts_overlapping_gpu_work_once():
    assert busy_fraction([(0, 2), (1, 3), (5, 6), (5.5, 5.8)]) == pytest.approx(4 / 6)
    assert busy_fraction([(10, 20)]) == 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_sampler_reports_nothing_rather_than_a_figure():
    with UtilizationSampler() as sampler:
        pass
    assert sampler.mean is None
