import numpy as np
import pytest

from daena_pipelines.regressions.stats import mann_whitney_greater


def test_fully_separated_small_samples_match_the_exact_tail():
    # exact one-sided p for n1 = n2 = 4, fully separated, is 1 / C(8, 4) = 1/70
    u, p = mann_whitney_greater([5, 6, 7, 8], [1, 2, 3, 4])
    assert u == 16
    assert 0.005 < p < 0.03
    u, p = mann_whitney_greater([1, 2, 3, 4], [5, 6, 7, 8])
    assert u == 0 and p > 0.98


def test_ties_and_identical_samples_are_not_significant():
    _, p = mann_whitney_greater([3, 3, 3, 3], [3, 3, 3, 3])
    assert p >= 0.5
    u, p = mann_whitney_greater([1, 2, 2, 3], [2, 2, 2, 2])
    assert u == 8.0 and p > 0.3


def test_detects_a_shift_in_latency_like_samples():
    rng = np.random.default_rng(7)
    old = rng.lognormal(mean=3.0, sigma=0.3, size=300)
    assert mann_whitney_greater(old * 1.3, old[::-1])[1] < 1e-6
    assert mann_whitney_greater(rng.permutation(old), old)[1] > 0.01


def test_needs_samples():
    with pytest.raises(ValueError):
        mann_whitney_greater([], [1.0])
