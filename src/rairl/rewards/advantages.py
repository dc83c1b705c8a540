"""Token-level GRPO advantages from backfilled rewards (DESIGN §1.4).

For a group of `G` responses to one prompt (rows `g·G .. g·G+G−1` of the batch, TRL's layout), with `r_T` the
reward at a member's last response token:

    μ_g = mean(r_T),   σ_g = std(r_T)   (over the G members; unbiased, as TRL's `nanstd`; σ_g = 0 when G = 1)
    ã_t = (r_t − μ_g) / (σ_g + 1e-4)                   on response tokens
    A_t = Σ_{k≥t} γ^{k−t} ã_k                          (step / interval / dense granularity)
    A_t = ã_T                                          (outcome granularity: every token gets the final value)

`A_t` is computed by the reverse scan `A_t = ã_t + γ·A_{t+1}`, never as `cumsum(ã_k/γ^k)·γ^t`, whose `γ^{−k}`
overflows (or underflows) after a few hundred tokens. A verifier's outcome reward, when used, is added to
`r_T` before the group statistics (`add_outcome_reward`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rairl.rewards.granularity import check_token_tensors, last_response_index

STD_EPS = 1e-4  # TRL's constant in (r − μ) / (σ + 1e-4)


def final_rewards(token_rewards: Tensor, response_mask: Tensor) -> Tensor:
    """`(B,)` reward `r_T` at each row's last response token; a row without response tokens raises ValueError."""
    check_token_tensors(response_mask, token_rewards=token_rewards)
    last = last_response_index(response_mask)  # (B,)
    if (empty := last < 0).any():
        raise ValueError(f"rows {torch.nonzero(empty).squeeze(1).tolist()} have no response token, so no final reward")
    return token_rewards.gather(1, last.unsqueeze(1)).squeeze(1)  # (B,)


def add_outcome_reward(token_rewards: Tensor, response_mask: Tensor, outcome: Tensor, weight: float) -> Tensor:
    """`r_T ← r_T + weight·outcome` at each row's last response token (other tokens unchanged).

    outcome: `(B,)`, e.g. 1.0 for a verified-correct answer and 0.0 otherwise. Apply it after backfill and clip,
    before `group_advantages`, so that the outcome enters the group statistics and, through the discounted
    sum, every earlier token's advantage.
    """
    check_token_tensors(response_mask, token_rewards=token_rewards)
    B = token_rewards.shape[0]
    if outcome.shape != (B,):
        raise ValueError(f"outcome must have shape (B,) = ({B},); got {tuple(outcome.shape)}")
    last = last_response_index(response_mask)  # (B,)
    if (empty := last < 0).any():
        rows = torch.nonzero(empty).squeeze(1).tolist()
        raise ValueError(f"rows {rows} have no response token for the outcome reward")
    bonus = torch.zeros_like(token_rewards)
    bonus.scatter_(1, last.unsqueeze(1), (weight * outcome.to(token_rewards.dtype)).unsqueeze(1))
    return token_rewards + bonus


def group_normalise(token_rewards: Tensor, response_mask: Tensor, group_size: int) -> Tensor:
    """`(B, T)` normalised rewards `ã_t = (r_t − μ_g) / (σ_g + 1e-4)` on response tokens, 0 elsewhere."""
    check_token_tensors(response_mask, token_rewards=token_rewards)
    B = token_rewards.shape[0]
    if group_size < 1 or B % group_size:
        raise ValueError(f"batch of B={B} rows does not split into groups of group_size={group_size}")
    final = final_rewards(token_rewards, response_mask).view(-1, group_size)  # (B/G, G)
    mu = final.mean(dim=1)  # (B/G,)
    sigma = final.std(dim=1) if group_size > 1 else torch.zeros_like(mu)  # unbiased (Bessel), as TRL
    mu = mu.repeat_interleave(group_size).unsqueeze(1)  # (B, 1)
    sigma = sigma.repeat_interleave(group_size).unsqueeze(1)  # (B, 1)
    normalised = (token_rewards - mu) / (sigma + STD_EPS)
    return torch.where(response_mask, normalised, torch.zeros_like(normalised))


def discounted_returns(x: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """`(B, T)` returns `A_t = Σ_{k≥t} γ^{k−t} x_k` over masked tokens (0 outside `mask`), by reverse scan.

    The exponent counts columns, which equals counting response tokens for a contiguous response.
    """
    check_token_tensors(mask, x=x)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1]; got {gamma}")
    dtype = torch.promote_types(x.dtype, torch.float32)
    x = torch.where(mask, x.to(dtype), torch.zeros((), dtype=dtype, device=x.device))
    returns = torch.empty_like(x)
    running = torch.zeros_like(x[:, 0])  # (B,): A_{t+1}
    for t in range(x.shape[1] - 1, -1, -1):
        running = x[:, t] + gamma * running
        returns[:, t] = running
    return torch.where(mask, returns, torch.zeros_like(returns))


def outcome_advantages(normalised: Tensor, response_mask: Tensor) -> Tensor:
    """`(B, T)` advantages `A_t = ã_T` on every response token, 0 elsewhere (outcome granularity)."""
    final = final_rewards(normalised, response_mask).unsqueeze(1)  # (B, 1)
    return torch.where(response_mask, final.expand_as(normalised), torch.zeros_like(normalised))


def group_advantages(
    token_rewards: Tensor, response_mask: Tensor, group_size: int, gamma: float, *, outcome: bool = False
) -> Tensor:
    """`(B, T)` token advantages: group-normalise `r_t`, then `A_t = Σ_{k≥t} γ^{k−t} ã_k`, or `A_t = ã_T` if `outcome`.

    token_rewards: `(B, T)` backfilled, clipped rewards `r_t`; rows of one group are consecutive.
    """
    normalised = group_normalise(token_rewards, response_mask, group_size)
    if outcome:
        return outcome_advantages(normalised, response_mask)
    return discounted_returns(normalised, response_mask, gamma)
