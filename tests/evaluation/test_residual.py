"""The reward beyond the likelihood (`rairl.evaluation.residual`): hand-computed pieces, and the two cases that
bound it: a reward that is a monotone function of the likelihood adds nothing, one that sees correctness adds."""

from __future__ import annotations

import numpy as np
import pytest

from rairl.evaluation.residual import (
    Scored,
    beyond_likelihood,
    describe,
    fit_logistic,
    group_auc,
    pick_agreement,
    residual,
    spearman,
)


def synthetic(n_groups: int = 200, n: int = 8, seed: int = 0):
    """Groups of n samples whose correctness the likelihood predicts in part (a noisy logit)."""
    rng = np.random.default_rng(seed)
    likelihood = rng.normal(size=n_groups * n)
    noise = rng.normal(size=n_groups * n)
    correct = rng.random(n_groups * n) < 1 / (1 + np.exp(-(likelihood + 1.5 * noise)))
    groups = [list(range(g * n, (g + 1) * n)) for g in range(n_groups)]
    return groups, correct, likelihood, noise


def test_group_auc_and_spearman_by_hand():
    assert group_auc(np.array([3.0, 1.0, 2.0]), np.array([True, False, False])) == 1.0
    assert group_auc(np.array([1.0, 1.0, 2.0]), np.array([True, False, False])) == pytest.approx((0.5 + 0.0) / 2)
    assert group_auc(np.array([1.0, 2.0]), np.array([True, True])) is None
    assert spearman(np.array([1, 2, 3]), np.array([10, 20, 30])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 1, 1]), np.array([1, 2, 3])) is None


def test_pick_agreement_counts_which_pick_was_right():
    groups = [[0, 1], [2, 3], [4, 5]]
    correct = [True, False, False, True, True, False]
    likelihood = [2, 1, 2, 1, 2, 1]  # picks 0, 2, 4
    reward = [2, 1, 1, 2, 1, 2]  # picks 0, 3, 5
    a = pick_agreement(Scored.of(groups, correct, likelihood, reward))
    assert a["same_pick"]["mean"] == pytest.approx(1 / 3)
    assert (a["differ_in_correctness"], a["reward_right"], a["likelihood_right"]) == (2, 1, 1)


def test_fit_logistic_recovers_known_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20000, 2))
    y = rng.random(20000) < 1 / (1 + np.exp(-(0.5 + 1.0 * x[:, 0] - 2.0 * x[:, 1])))
    np.testing.assert_allclose(fit_logistic(x, y.astype(float)), [0.5, 1.0, -2.0], atol=0.08)


@pytest.mark.parametrize("transform", [lambda x: 2 * x + 1, np.exp], ids=["linear", "exp"])
def test_a_monotone_function_of_the_likelihood_has_no_residual(transform):
    groups, correct, likelihood, _ = synthetic()
    figures = beyond_likelihood(Scored.of(groups, correct, likelihood, transform(likelihood)))
    assert figures["agreement"]["same_pick"]["mean"] == 1.0
    assert figures["agreement"]["spearman"]["mean"] == pytest.approx(1.0)
    lo, hi = figures["residual"]["auc_gain"]["ci95"]
    assert lo <= 0 <= hi, figures["residual"]["auc_gain"]
    assert "adds nothing measurable" in describe(figures)


def test_a_reward_that_sees_correctness_has_a_positive_residual():
    groups, correct, likelihood, noise = synthetic()
    reward = likelihood + noise  # it knows the part of correctness the likelihood misses
    fit = Scored.of(*synthetic(seed=1)[:3], synthetic(seed=1)[2] + synthetic(seed=1)[3])
    for figures in (beyond_likelihood(Scored.of(groups, correct, likelihood, reward, learned=noise)),
                    beyond_likelihood(Scored.of(groups, correct, likelihood, reward, learned=noise), fit)):  # fmt: skip
        r = figures["residual"]
        assert r["auc_gain"]["ci95"][0] > 0, r["auc_gain"]
        assert r["log_loss_gain"]["ci95"][0] > 0, r["log_loss_gain"]
        assert r["auc"]["learned"]["ci95"][0] > 0.5
        assert figures["agreement"]["same_pick"]["mean"] < 0.9
        assert "adds to the likelihood" in describe(figures)
    assert "validation" in figures["residual"]["fit"]


def test_residual_says_when_it_cannot_be_fitted():
    groups = [[0, 1], [2, 3]]
    r = residual(Scored.of(groups, [True] * 4, [1, 2, 3, 4], [1, 2, 3, 4]))
    assert r["auc_gain"]["mean"] is None and "only correct or only wrong" in r["note"]
    figures = beyond_likelihood(Scored.of(groups, [True] * 4, [1, 2, 3, 4], [1, 2, 3, 4]))
    assert "not fitted" in describe(figures)
    with pytest.raises(ValueError, match="non-finite"):
        Scored.of(groups, [True, False] * 2, [1, np.nan, 3, 4], [1, 2, 3, 4])
