"""Backfill and clip: sparse discriminator values to a reward on every response token (DESIGN §1.3).

    r_t = v_{t'},   t' = min{k ≥ t : m_k = 1}        (response tokens; 0 elsewhere)
    r_t ← clip(r_t, −β, β)            (β = 0: no clipping)

Each token takes the value of the next supervision point at or after it, so a step's tokens all receive the
value read at the step's last token. Response tokens after the last supervision point (possible only with a
mask that omits the last response token) get 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rairl.rewards.granularity import check_token_tensors


def backfill(values: Tensor, mask: Tensor, response_mask: Tensor) -> Tensor:
    """`(B, T)` rewards `r_t = v_{t'}` with `t' = min{k ≥ t : m_k = 1}` on response tokens, 0 elsewhere.

    values: `(B, T)` float, `v_t` (read only where `mask` is set); mask: bool `(B, T)` supervision points `m_t`,
    inside the response; response_mask: bool `(B, T)`.
    """
    check_token_tensors(response_mask, values=values, mask=mask)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor; got {mask.dtype}")
    if (outside := mask & ~response_mask).any():
        b, t = torch.nonzero(outside)[0].tolist()
        raise ValueError(
            f"mask marks column {t} of row {b}, which is not a response token; masks must lie inside the response"
        )
    T = values.shape[1]
    columns = torch.arange(T, device=values.device).expand_as(mask)  # (B, T)
    marked = torch.where(mask, columns, T)  # (B, T): k where m_k = 1, T (= none) elsewhere
    # t' = min over k >= t: a cumulative minimum taken from the right (reverse scan).
    next_point = marked.flip(1).cummin(dim=1).values.flip(1)  # (B, T)
    rewards = values.gather(1, next_point.clamp(max=T - 1))  # (B, T)
    keep = response_mask & (next_point < T)
    return torch.where(keep, rewards, torch.zeros_like(rewards))


def clip(rewards: Tensor, beta: float) -> Tensor:
    """`clip(r, −β, β)` elementwise; `β = 0` leaves the rewards unchanged (no clipping)."""
    if not beta >= 0:
        raise ValueError(f"clip needs beta >= 0 (0: no clipping); got beta={beta}")
    return rewards.clamp(min=-beta, max=beta) if beta else rewards
