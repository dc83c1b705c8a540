import math

import pytest
import torch

from rairl.rewards.advantages import (
    add_outcome_reward,
    discounted_returns,
    final_rewards,
    group_advantages,
    reward_to_go,
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


def test_reward_to_go_is_a_discounted_mean():
    # row 0: r = 2, 0, 1 on cols 1..3; gamma = 1: R = mean of the rewards from t on
    torch.testing.assert_close(reward_to_go(REWARDS, RESPONSE, 1.0)[0], torch.tensor([0.0, 1.0, 0.5, 1.0]))
    # gamma = 0.5: R_2 = (0 + 0.5*1) / 1.5, R_1 = (2 + 0.5*0 + 0.25*1) / 1.75
    torch.testing.assert_close(
        reward_to_go(REWARDS, RESPONSE, 0.5)[0], torch.tensor([0.0, 2.25 / 1.75, 0.5 / 1.5, 1.0])
    )
    # outcome: r_T on every response token
    assert reward_to_go(REWARDS, RESPONSE, 1.0, outcome=True)[1].tolist() == [3.0, 3.0, 0.0, 0.0]


def test_group_advantages_by_hand():
    # Group 0: row 0 R = 1, 0.5, 1 (mean 5/6); row 1 R = 4, 3 (mean 3.5). Members weigh 1/2 each.
    mu0 = (5 / 6 + 3.5) / 2
    var0 = ((1 - mu0) ** 2 * 2 + (0.5 - mu0) ** 2) / 3 / 2 + ((4 - mu0) ** 2 + (3 - mu0) ** 2) / 2 / 2
    # Group 1 has equal final rewards (4, 4), the case that used to divide by 1e-4: row 2 R = 4, 4;
    # row 3 R = 2.5, 3, 3.5, 4 (mean 3.25). Whole-trace values 4 and 2.5 differ, so the group is told apart.
    mu1 = (4 + 3.25) / 2
    var1 = (4 - mu1) ** 2 / 2 + sum((v - mu1) ** 2 for v in (2.5, 3.0, 3.5, 4.0)) / 4 / 2
    s0, s1 = math.sqrt(var0), math.sqrt(var1)
    expected = torch.tensor(
        [
            [0.0, (1 - mu0) / s0, (0.5 - mu0) / s0, (1 - mu0) / s0],
            [(4 - mu0) / s0, (3 - mu0) / s0, 0.0, 0.0],
            [0.0, 0.0, (4 - mu1) / s1, (4 - mu1) / s1],
            [(2.5 - mu1) / s1, (3 - mu1) / s1, (3.5 - mu1) / s1, (4 - mu1) / s1],
        ]
    )
    out = group_advantages(REWARDS, RESPONSE, 2, 1.0)
    torch.testing.assert_close(out, expected)
    assert out.abs().max() < 3  # the old normalisation gave -3 / 1e-4 = -30,000 on row 3


def test_members_that_cannot_be_told_apart_carry_no_advantage():
    rewards = torch.tensor([[1.0, -2.0, 5.0]] * 3 + [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0 + 1e-6], [0.0, 1.0, 2.0]])
    mask = torch.ones(6, 3, dtype=torch.bool)
    for outcome in (False, True):
        assert torch.equal(group_advantages(rewards, mask, 3, 1.0, outcome=outcome), torch.zeros(6, 3))


def test_outcome_is_grpo_z_score():
    # r_T = 1 and 3: mu = 2, population std = 1 -> A = -1, +1 on every response token
    out = group_advantages(REWARDS[:2], RESPONSE[:2], 2, 1.0, outcome=True)
    assert out.tolist() == [[0.0, -1.0, -1.0, -1.0], [1.0, 1.0, 0.0, 0.0]]


def test_scale_does_not_grow_with_trace_length_or_reward_size():
    for T in (4, 400):
        rewards = torch.tensor([[1.0] * T, [3.0] * T])
        out = group_advantages(rewards, torch.ones(2, T, dtype=torch.bool), 2, 1.0)
        torch.testing.assert_close(out, torch.tensor([[-1.0] * T, [1.0] * T]))
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(8, 50, generator=g)
    mask = torch.rand(8, 50, generator=g) < 0.8
    mask[:, 0] = True
    a = group_advantages(rewards, mask, 4, 0.9)
    torch.testing.assert_close(group_advantages(1000 * rewards, mask, 4, 0.9), a, rtol=1e-3, atol=1e-3)
    assert a.abs().max() <= math.sqrt(4 * 50)  # Samuelson's bound with member weights


def test_group_of_one_gives_zero():
    out = group_advantages(REWARDS, RESPONSE, 1, 1.0)
    assert torch.equal(out, torch.zeros(4, 4))


def test_group_size_must_divide_the_batch():
    with pytest.raises(ValueError, match="B=4 rows does not split into groups of group_size=3"):
        group_advantages(REWARDS, RESPONSE, 3, 1.0)


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
