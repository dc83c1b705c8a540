"""Granularity masks: which response tokens carry a discriminator value (DESIGN §1.3).

`m_t ∈ {0, 1}` marks the supervision points inside the response:

    outcome   m_t = 1  iff  t = T                    (the last response token)
    step      m_t = 1  iff  t ∈ step_ends  or  t = T  (the last token of each reasoning step)
    interval  m_t = 1  iff  (n_t mod k = 0)  or  t = T, n_t = 1-based index of t among the response tokens
    dense     m_t = 1  for every response token

Tensors are `(B, T)` over the columns of a packed batch: the response of row `b` may start at any column
(prompt + response with left or right padding), and `response_mask[b, t]` is True exactly on its tokens.
A row without response tokens gets an empty mask. Each registry entry (`Granularity`) carries its mask builder and
whether the trace is rewarded once (`outcome`: the advantages then read r_T on every token, GRPO's scalar).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rairl.registry import Registry

MaskBuilder = Callable[[Tensor, list[list[int]] | None, int], Tensor]


@dataclass(frozen=True)
class Granularity:
    """A granularity: its mask builder `(response_mask, step_ends, k) -> m`, and whether it rewards a trace once."""

    mask: MaskBuilder
    outcome: bool = False


GRANULARITIES: Registry[Granularity] = Registry("granularity")


def register(name: str, outcome: bool = False) -> Callable[[MaskBuilder], MaskBuilder]:
    """A decorator that files a mask builder as granularity `name`."""

    def wrap(builder: MaskBuilder) -> MaskBuilder:
        GRANULARITIES.register(name)(Granularity(builder, outcome))
        return builder

    return wrap


def check_token_tensors(response_mask: Tensor, **tensors: Tensor) -> None:
    """Shape contract of every function in `rairl.rewards`: a bool `(B, T)` response mask, others `(B, T)` too."""
    if response_mask.dim() != 2 or response_mask.dtype != torch.bool:
        raise ValueError(
            f"response_mask must be a bool tensor of shape (B, T); got dtype {response_mask.dtype}, "
            f"shape {tuple(response_mask.shape)}"
        )
    for name, tensor in tensors.items():
        if tensor.shape != response_mask.shape:
            raise ValueError(
                f"{name} must have the shape of response_mask (B, T) = {tuple(response_mask.shape)}; "
                f"got {tuple(tensor.shape)}"
            )


def last_response_index(response_mask: Tensor) -> Tensor:
    """`(B,)` column of each row's last response token, -1 for a row without response tokens."""
    check_token_tensors(response_mask)
    columns = torch.arange(response_mask.shape[1], device=response_mask.device)
    return torch.where(response_mask, columns, -1).amax(dim=1)  # (B,)


def _with_last(mask: Tensor, response_mask: Tensor) -> Tensor:
    """`mask` plus the last response token of every non-empty row."""
    last = last_response_index(response_mask)  # (B,)
    rows = torch.nonzero(last >= 0).squeeze(1)
    out = mask.clone()
    out[rows, last[rows]] = True
    return out


@register("outcome", outcome=True)
def _outcome(response_mask: Tensor, step_ends: list[list[int]] | None, k: int) -> Tensor:
    return _with_last(torch.zeros_like(response_mask), response_mask)


@register("step")
def _step(response_mask: Tensor, step_ends: list[list[int]] | None, k: int) -> Tensor:
    B, T = response_mask.shape
    if step_ends is None:
        raise ValueError("granularity 'step' needs step_ends (one list of step-end columns per row); got None")
    if len(step_ends) != B:
        raise ValueError(f"step_ends must have one list per row: got {len(step_ends)} lists for B={B} rows")
    rows = [b for b, ends in enumerate(step_ends) for _ in ends]
    cols = [t for ends in step_ends for t in ends]
    in_range = [0 <= t < T for t in cols]
    outside = [not ok for ok in in_range] if not all(in_range) else (~response_mask[rows, cols]).tolist()
    if any(outside):
        b, t = rows[outside.index(True)], cols[outside.index(True)]
        raise ValueError(
            f"step end column {t} of row {b} is not a response token (T={T}); step_ends must be "
            f"absolute columns of the (B, T) batch, i.e. token index in the response + its first column"
        )
    mask = torch.zeros_like(response_mask)
    mask[rows, cols] = True
    return _with_last(mask, response_mask)


@register("interval")
def _interval(response_mask: Tensor, step_ends: list[list[int]] | None, k: int) -> Tensor:
    if k < 1:
        raise ValueError(f"granularity 'interval' needs k >= 1; got k={k}")
    ordinal = torch.cumsum(response_mask.long(), dim=1)  # (B, T): n_t, 1-based among response tokens
    return _with_last(response_mask & (ordinal % k == 0), response_mask)


@register("dense")
def _dense(response_mask: Tensor, step_ends: list[list[int]] | None, k: int) -> Tensor:
    return response_mask.clone()


INTERVAL = 8  # k of `interval`, a label every k tokens (the settings' default, `RewardSettings.interval`)


def granularity_mask(
    name: str, response_mask: Tensor, step_ends: list[list[int]] | None = None, k: int = INTERVAL
) -> Tensor:
    """Bool `(B, T)` supervision mask `m` of granularity `name` (see the module docstring).

    `step_ends[b]` holds absolute columns (0..T-1) of the last token of each step of row `b` (only `step` reads
    it; see `rairl.traces.step_end_tokens`); `k` is the spacing of `interval`. The mask is always inside the response.
    """
    granularity = GRANULARITIES.lookup(name)
    check_token_tensors(response_mask)
    return granularity.mask(response_mask, step_ends, k)
