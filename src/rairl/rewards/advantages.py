"""Token-level GRPO advantages from backfilled rewards (DESIGN §1.4).

For a group of `G` responses to one prompt (rows `g·G .. g·G+G−1` of the batch, TRL's layout), with `r_t` the
backfilled, clipped token reward (so `|r_t| ≤ β`) and `T_b` member b's last response token:

    R_t = Σ_{k≥t} γ^{k−t} r_k / Σ_{k≥t} γ^{k−t}       discounted *mean* reward-to-go   (step / interval / dense)
    R_t = r_{T_b}                                         on every token                   (outcome)
    μ_g = (1/G) Σ_b mean_t R_{b,t}                        each member weighs the same, whatever its length
    σ_g² = (1/G) Σ_b mean_t (R_{b,t} − μ_g)²
    A_t = (R_t − μ_g) / σ_g      if the members can be told apart, else A_t = 0

Members can be told apart when the std over members of their whole-trace values `R_{b,first}` (and σ_g) is at
least `MIN_STD`. For `outcome`, R_{b,first} = r_T and this is GRPO's scalar z-score (population std).

Why this form (an earlier version divided the raw token rewards by the std of the members' *final* rewards plus
1e-4; measured: loss up to 3·10⁴ and grad-norm up to 4·10⁴ on groups whose final rewards were equal):
- numerator and denominator come from the same population, so the scale cannot grow with 1/σ: a z-score is
  invariant to scaling r, and |A_t| ≤ √(G·T_max) in the worst case (Samuelson's inequality with member weights);
- `R_t` is a (discounted) mean, not a sum, so it lies in [−β, β] whatever the trace length (a γ = 1 sum of T
  rewards grew ~T times larger than outcome advantages);
- a group of identical samples (or equal trace values) carries no advantage, as TRL does for scalar rewards.

Both discounted sums use the reverse scan `A_t = x_t + γ·A_{t+1}`, never `cumsum(x_k/γ^k)·γ^t`, whose `γ^{−k}`
overflows (or underflows) after a few hundred tokens. A verifier's outcome reward, when used, is added to `r_T`
before the group statistics (`add_outcome_reward`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rairl.rewards.granularity import check_token_tensors, last_response_index

MIN_STD = 1e-4  # reward units (logits): members whose trace values differ by less cannot be told apart


def final_rewards(token_rewards: Tensor, response_mask: Tensor) -> Tensor:
    """`(B,)` reward `r_T` at each row's last response token; a row without response tokens raises ValueError."""
    check_token_tensors(response_mask, token_rewards=token_rewards)
    last = last_response_index(response_mask)  # (B,)
    if (empty := last < 0).any():
        raise ValueError(f"rows {torch.nonzero(empty).squeeze(1).tolist()} have no response token, so no final reward")
    return token_rewards.gather(1, last.unsqueeze(1)).squeeze(1)  # (B,)


def first_values(values: Tensor, response_mask: Tensor) -> Tensor:
    """`(B,)` value at each row's first response token (0 for a row without one)."""
    first = response_mask.int().argmax(dim=1)  # (B,)
    return torch.where(response_mask.any(dim=1), values.gather(1, first.unsqueeze(1)).squeeze(1), 0.0)


def add_outcome_reward(token_rewards: Tensor, response_mask: Tensor, outcome: Tensor, weight: float) -> Tensor:
    """`r_T ← r_T + weight·outcome` at each row's last response token (other tokens unchanged).

    outcome: `(B,)`, e.g. 1.0 for a verified-correct answer and 0.0 otherwise. Apply it after backfill and clip,
    before `group_advantages`, so that the outcome enters the group statistics and every earlier token's
    reward-to-go.
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


def reward_to_go(token_rewards: Tensor, response_mask: Tensor, gamma: float, *, outcome: bool = False) -> Tensor:
    """`(B, T)` values `R_t` the advantages standardise: the discounted mean of the rewards from t on
    (`Σ γ^{k−t} r_k / Σ γ^{k−t}`), or `r_T` on every response token if `outcome`; 0 outside responses."""
    if outcome:
        final = final_rewards(token_rewards, response_mask).unsqueeze(1)  # (B, 1)
        return torch.where(response_mask, final.expand_as(token_rewards), torch.zeros_like(token_rewards))
    weights = discounted_returns(torch.ones_like(token_rewards), response_mask, gamma)  # Σ_{k≥t} γ^{k−t} ≥ 1
    returns = discounted_returns(token_rewards, response_mask, gamma)
    return torch.where(response_mask, returns / weights.clamp_min(1.0), torch.zeros_like(returns))


@dataclass(frozen=True)
class GroupStats:
    """Per group `(B/G,)`: μ_g and σ_g of `R_t` (members weighted equally), and whether its members differ."""

    mean: Tensor
    std: Tensor
    distinct: Tensor  # bool


def group_stats(values: Tensor, response_mask: Tensor, group_size: int) -> GroupStats:
    """μ_g, σ_g of the `(B, T)` values `R_t` over each group's response tokens (every member weighs 1/G, its
    tokens share that weight), and `distinct`: the members' whole-trace values differ (std ≥ `MIN_STD`)."""
    check_token_tensors(response_mask, values=values)
    B = values.shape[0]
    if group_size < 1 or B % group_size:
        raise ValueError(f"batch of B={B} rows does not split into groups of group_size={group_size}")
    if (~response_mask.any(dim=1)).any():
        rows = torch.nonzero(~response_mask.any(dim=1)).squeeze(1).tolist()
        raise ValueError(f"rows {rows} have no response token, so no advantage")
    m = response_mask.to(values.dtype)
    weight = (m / m.sum(dim=1, keepdim=True)).view(-1, group_size, values.shape[1]) / group_size  # sums to 1 a group
    grouped = values.view(-1, group_size, values.shape[1])  # (B/G, G, T)
    mean = (weight * grouped).sum(dim=(1, 2))  # (B/G,)
    std = (weight * (grouped - mean[:, None, None]) ** 2).sum(dim=(1, 2)).sqrt()
    members = first_values(values, response_mask).view(-1, group_size)  # (B/G, G): whole-trace values
    spread = members.std(dim=1, unbiased=False)
    return GroupStats(mean, std, (spread >= MIN_STD) & (std >= MIN_STD))


def standardise(values: Tensor, response_mask: Tensor, stats: GroupStats, groups: Tensor) -> Tensor:
    """`(B, T)` advantages `A_t = (R_t − μ_g) / σ_g` of rows whose group index is `groups` `(B,)`; 0 for rows of
    groups whose members cannot be told apart, and outside responses."""
    mean, std, distinct = stats.mean[groups, None], stats.std[groups, None], stats.distinct[groups, None]
    z = (values - mean) / std.clamp_min(MIN_STD)
    return torch.where(response_mask & distinct, z, torch.zeros_like(z))


def group_advantages(
    token_rewards: Tensor, response_mask: Tensor, group_size: int, gamma: float, *, outcome: bool = False
) -> Tensor:
    """`(B, T)` token advantages (module docstring): `R_t` by `reward_to_go`, standardised within each group.

    token_rewards: `(B, T)` backfilled, clipped rewards `r_t`; rows of one group are consecutive.
    """
    values = reward_to_go(token_rewards, response_mask, gamma, outcome=outcome)
    stats = group_stats(values, response_mask, group_size)
    groups = torch.arange(values.shape[0], device=values.device) // group_size
    return standardise(values, response_mask, stats, groups)
