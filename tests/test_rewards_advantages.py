import math

import pytest
import torch

from rairl.rewards.advantages import (
    add_outcome_reward,
    discounted_returns,
    final_rewards,
    group_advantages,
    group_normalise,
    outcome_advantages,
)

# Two groups of G=2; responses: row 0 at 1..3, row 1 at 0..1, row 2 at 2..3, row 3 at 0..3.
RESPONSE = torch.tensor(
    [[0, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]],
    dtype=torch.bool,
)
REWARDS = torch.tensor(
    [
        [9.0, 2.0, 0.0, 1.0],  # r_T = 1
        [5.0, 3.0, 9.0, 9.0],  # r_T = 3
        [9.0, 9.0, 4.0, 4.0],  # r_T = 4
        [1.0, 2.0, 3.0, 4.0],  # r_T = 4
    ]
)


def test_final_rewards():
    assert final_rewards(REWARDS, RESPONSE).tolist() == [1.0, 3.0, 4.0, 4.0]
    empty = RESPONSE.clone()
    empty[2] = False
    with pytest.raises(ValueError, match=r"rows \[2\] have no response token"):
        final_rewards(REWARDS, empty)


def test_group_normalise_by_hand():
    # Group 0: r_T = 1, 3 -> mu = 2, unbiased std = sqrt(2). Group 1: r_T = 4, 4 -> mu = 4, std = 0.
    s = math.sqrt(2) + 1e-4
    expected = torch.tensor(
        [
            [0.0, 0.0 / s, -2.0 / s, -1.0 / s],
            [3.0 / s, 1.0 / s, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
            [-3.0 / 1e-4, -2.0 / 1e-4, -1.0 / 1e-4, 0.0],
        ]
    )
    torch.testing.assert_close(group_normalise(REWARDS, RESPONSE, 2), expected)


def test_group_normalise_uses_the_unbiased_std_like_torch_std():
    rewards = torch.tensor([[1.0], [2.0], [6.0]])
    out = group_normalise(rewards, torch.ones(3, 1, dtype=torch.bool), 3)
    sigma = torch.tensor([1.0, 2.0, 6.0]).std()  # unbiased: sqrt(13) ~ 2.6458
    torch.testing.assert_close(out.squeeze(1), (torch.tensor([1.0, 2.0, 6.0]) - 3.0) / (sigma + 1e-4))


def test_group_of_one_gives_zero():
    out = group_normalise(REWARDS, RESPONSE, 1)
    assert torch.isfinite(out).all()
    assert torch.equal(final_rewards(out, RESPONSE), torch.zeros(4))


def test_group_size_must_divide_the_batch():
    with pytest.raises(ValueError, match="B=4 rows does not split into groups of group_size=3"):
        group_normalise(REWARDS, RESPONSE, 3)


def naive_returns(x, mask, gamma):
    B, T = x.shape
    out = torch.zeros(B, T, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            if mask[b, t]:
                out[b, t] = sum(gamma ** (k - t) * float(x[b, k]) for k in range(t, T) if mask[b, k])
    return out


def test_discounted_returns_by_hand():
    x = torch.tensor([[7.0, 1.0, 2.0, 4.0, 7.0]])
    mask = torch.tensor([[0, 1, 1, 1, 0]], dtype=torch.bool)
    # gamma = 0.5: A_3 = 4, A_2 = 2 + 0.5*4 = 4, A_1 = 1 + 0.5*4 = 3; outside the mask 0.
    assert discounted_returns(x, mask, 0.5).tolist() == [[0.0, 3.0, 4.0, 4.0, 0.0]]
    assert discounted_returns(x, mask, 1.0).tolist() == [[0.0, 7.0, 6.0, 4.0, 0.0]]
    assert discounted_returns(x, mask, 0.0).tolist() == [[0.0, 1.0, 2.0, 4.0, 0.0]]


def test_reverse_scan_matches_the_double_loop():
    g = torch.Generator().manual_seed(1)
    for gamma in (0.0, 0.5, 0.9, 1.0):
        x = torch.randn(3, 11, generator=g)
        mask = torch.zeros(3, 11, dtype=torch.bool)
        mask[0, 2:9], mask[1, :5], mask[2, 6:] = True, True, True
        expected = naive_returns(x, mask, gamma).float()
        torch.testing.assert_close(discounted_returns(x, mask, gamma), expected)


def test_long_traces_stay_finite():
    T, gamma = 8192, 0.99
    x = torch.ones(2, T)
    mask = torch.ones(2, T, dtype=torch.bool)
    returns = discounted_returns(x, mask, gamma)
    assert torch.isfinite(returns).all()
    # A_t = (1 - gamma^(T-t)) / (1 - gamma) for x = 1.
    expected = (1 - gamma ** (T - torch.arange(T, dtype=torch.float64))) / (1 - gamma)
    torch.testing.assert_close(returns[0].double(), expected, rtol=1e-4, atol=1e-4)


def test_discounted_returns_rejects_bad_gamma():
    with pytest.raises(ValueError, match=r"gamma must lie in \[0, 1\]; got 1.5"):
        discounted_returns(REWARDS, RESPONSE, 1.5)


def test_outcome_advantages_spread_the_final_value():
    normalised = group_normalise(REWARDS, RESPONSE, 2)
    out = outcome_advantages(normalised, RESPONSE)
    s = math.sqrt(2) + 1e-4
    torch.testing.assert_close(out[0], torch.tensor([0.0, -1 / s, -1 / s, -1 / s]))
    torch.testing.assert_close(out[1], torch.tensor([1 / s, 1 / s, 0.0, 0.0]))


def test_group_advantages_combines_normalise_and_discount():
    normalised = group_normalise(REWARDS, RESPONSE, 2)
    torch.testing.assert_close(
        group_advantages(REWARDS, RESPONSE, 2, 0.9), discounted_returns(normalised, RESPONSE, 0.9)
    )
    torch.testing.assert_close(
        group_advantages(REWARDS, RESPONSE, 2, 0.9, outcome=True), outcome_advantages(normalised, RESPONSE)
    )


def test_add_outcome_reward_goes_to_the_last_response_token():
    out = add_outcome_reward(REWARDS, RESPONSE, torch.tensor([1.0, 0.0, 1.0, 1.0]), 0.5)
    expected = REWARDS.clone()
    expected[0, 3] += 0.5
    expected[2, 3] += 0.5
    expected[3, 3] += 0.5
    assert torch.equal(out, expected)
    assert torch.equal(add_outcome_reward(REWARDS, RESPONSE, torch.ones(4), 0.0), REWARDS)
    with pytest.raises(ValueError, match=r"outcome must have shape \(B,\) = \(4,\); got \(2,\)"):
        add_outcome_reward(REWARDS, RESPONSE, torch.ones(2), 1.0)
