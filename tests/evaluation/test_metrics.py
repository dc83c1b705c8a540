import math

import numpy as np
import pytest

from rairl.evaluation.metrics import (
    bootstrap_ci,
    majority_vote,
    oracle_at_n,
    paired_diff,
    pass_at_k,
    random_pick,
    success_at_1_of_n,
    summarize,
)


@pytest.mark.parametrize("k, expected", [(1, 0.4), (2, 0.7), (3, 0.9), (4, 1.0), (5, 1.0)])
def test_pass_at_k_n5_c2(k, expected):
    # 1 - C(3,k)/C(5,k): C(3,1)/C(5,1)=3/5, C(3,2)/C(5,2)=3/10, C(3,3)/C(5,3)=1/10; k>3 leaves no all-wrong draw
    assert pass_at_k(5, 2, k) == pytest.approx(expected)


def test_pass_at_k_edges():
    assert pass_at_k(8, 0, 1) == 0.0
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 8, 1) == 1.0
    assert pass_at_k(8, 7, 2) == 1.0  # n - c = 1 < k
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = c / n
    # large n stays finite and matches the binomial form
    assert pass_at_k(200, 17, 10) == pytest.approx(1 - math.comb(183, 10) / math.comb(200, 10))


@pytest.mark.parametrize("n, c, k", [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)])
def test_pass_at_k_rejects_bad_counts(n, c, k):
    with pytest.raises(ValueError, match="pass@k"):
        pass_at_k(n, c, k)


def test_bootstrap_ci_contains_mean_and_is_seeded():
    values = np.array([0, 1, 1, 0, 1, 1, 1, 0, 1, 1], dtype=float)
    lo, hi = bootstrap_ci(values, seed=3)
    assert lo <= values.mean() <= hi
    assert 0.0 <= lo < hi <= 1.0
    assert bootstrap_ci(values, seed=3) == (lo, hi)
    spread = np.linspace(0.0, 1.0, 11) ** 2  # continuous values: another seed moves the interval
    assert bootstrap_ci(spread, seed=3) == bootstrap_ci(spread, seed=3)
    assert bootstrap_ci(spread, seed=3) != bootstrap_ci(spread, seed=4)


def test_bootstrap_ci_constant_and_single():
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert bootstrap_ci([1.0]) == (1.0, 1.0)


def test_bootstrap_ci_resamples_rows_of_2d_values():
    pairs = np.array([[1, 1], [0, 1], [1, 0], [1, 1]], dtype=float)
    lo, hi = bootstrap_ci(pairs, stat=lambda rows: (rows[:, 0] == rows[:, 1]).mean(), n_boot=500)
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0


def test_bootstrap_ci_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])


def test_summarize_shape():
    s = summarize([1, 0, 1, 1])
    assert set(s) == {"mean", "ci95", "n"}
    assert s["mean"] == 0.75 and s["n"] == 4
    assert len(s["ci95"]) == 2 and s["ci95"][0] <= 0.75 <= s["ci95"][1]
    assert all(isinstance(x, float) for x in s["ci95"])
    assert summarize([]) == {"mean": None, "ci95": [None, None], "n": 0}
    with pytest.raises(ValueError, match="1-D"):
        summarize([[1, 2]])


def test_paired_diff():
    s = paired_diff([1, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])
    assert s["mean"] == pytest.approx(0.25) and s["n"] == 4
    assert paired_diff([1, 0], [1, 0])["ci95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="same questions"):
        paired_diff([1, 0], [1])


def test_success_at_1_of_n_picks_highest():
    assert success_at_1_of_n([0.1, 0.9, 0.3], [False, True, False]) == 1.0
    assert success_at_1_of_n([0.1, 0.9, 0.3], [True, False, True]) == 0.0
    assert success_at_1_of_n([-np.inf, -1.0], [False, True]) == 1.0


def test_success_at_1_of_n_ties_are_exact_expectation():
    # two samples tie at the top, one of them correct -> 1/2; all tied -> random pick
    assert success_at_1_of_n([2.0, 2.0, 1.0], [True, False, True]) == 0.5
    assert success_at_1_of_n([0, 0, 0, 0], [True, False, False, False]) == 0.25


def test_success_at_1_of_n_nan_raises():
    with pytest.raises(ValueError, match="NaN"):
        success_at_1_of_n([0.1, float("nan")], [True, False])
    with pytest.raises(ValueError, match="2 scores/answers for 3"):
        success_at_1_of_n([0.1, 0.2], [True, False, True])


def test_oracle_and_random_pick():
    assert oracle_at_n([False, False, True]) == 1.0
    assert oracle_at_n([False, False]) == 0.0
    assert random_pick([True, False, False, True]) == 0.5
    with pytest.raises(ValueError, match="N >= 1"):
        random_pick([])


def test_majority_vote():
    assert majority_vote(["4", "4", "5"], [True, True, False]) == 1.0
    assert majority_vote(["5", "4", "5", None, None, None], [False, True, False, False, False, False]) == 0.0
    # a 1-1 tie between a right and a wrong answer -> 1/2
    assert majority_vote(["4", "5", None], [True, False, False]) == 0.5
    assert majority_vote([None, None], [False, False]) == 0.0
