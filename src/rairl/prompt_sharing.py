r"""Prompt sharing: run each distinct prompt through the backbone once, however many responses follow it.

A GRPO step scores G responses per prompt, and the discriminator update adds the prompt's expert trace and its
perturbed copies: every prompt appears G + 2 times or more. A causal backbone's states on the prompt do not
depend on what follows, so for rows b with prompt x_g(b) and response y_b:

    h_b[:|x|]  = backbone(x_g(b))                               (one pass over the U distinct prompts)
    h_b[|x|:]  = backbone(y_b | cache of x_g(b))                (the prompt's keys/values reused, not recomputed)

which equals backbone(x_g(b) ⊕ y_b) up to floating-point rounding, at the cost of U·|x| + B·|y| positions instead
of B·(|x| + |y|). Prompts are left-padded in the first pass (so every prompt ends at the same column, where the
responses continue), with explicit position ids; the cache rows are gathered per response (`index_select`, so
gradients flow back into the shared prompt pass). The result is laid out exactly as the plain forward's: (B, T, H)
on the right-padded `TraceBatch` columns. For batched scoring, `grouped_order` keeps each prompt's rows in the
same mini-batch.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


def prompt_lengths(attention_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Each right-padded row's first response column (its whole length when it has no response). -> (B,)"""
    return torch.where(response_mask.any(1), response_mask.int().argmax(1), attention_mask.sum(1))


def grouped_order(input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor) -> list[int]:
    """Row order for mini-batches: rows of one prompt together (so a mini-batch runs that prompt once), groups by
    their longest row and rows by length, longest first (little padding). Distinct prompts: plain length order."""
    lengths = attention_mask.sum(1).tolist()
    group = prompt_groups(input_ids, prompt_lengths(attention_mask, response_mask))[0].tolist()
    longest: dict[int, int] = {}
    for g, n in zip(group, lengths):
        longest[g] = max(longest.get(g, 0), n)
    return sorted(range(len(lengths)), key=lambda b: (-longest[group[b]], group[b], -lengths[b]))


def prompt_groups(input_ids: torch.Tensor, prompt_lengths: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Index of each row's prompt among the distinct prompts (first-seen order), and the rows that carry them."""
    seen: dict[tuple[int, ...], int] = {}
    group, firsts = [], []
    rows = input_ids.tolist()  # one device-to-host copy, not one per row
    for b, n in enumerate(prompt_lengths.tolist()):
        key = tuple(rows[b][:n])
        if key not in seen:
            seen[key] = len(firsts)
            firsts.append(b)
        group.append(seen[key])
    return torch.tensor(group, dtype=torch.long, device=input_ids.device), firsts


def take_columns(h: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """out[b, t] = h[b, index[b, t]]: (B, S, H) states, (B, T) column indices -> (B, T, H)."""
    return h.gather(1, index[..., None].expand(-1, -1, h.shape[-1]))


def takes_a_cache(backbone: nn.Module) -> bool:
    """Whether the backbone's forward names `cache` and `position_ids` (transformers 5 decoders do); one that does not
    could ignore the cache silently and score responses without their prompt, so it is never shared."""
    params = inspect.signature(backbone.forward).parameters
    return "cache" in params and "position_ids" in params


def shared_prompt_hidden(
    backbone: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor | None:
    """Last hidden states (B, T, H) of right-padded prompt + response rows, each distinct prompt run once.

    Returns None when no prompt is shared (or a row has no prompt): the plain forward is then as cheap.
    """
    if not takes_a_cache(backbone):
        return None
    B, T = input_ids.shape
    lengths = attention_mask.sum(1)
    plen = prompt_lengths(attention_mask, response_mask)
    if B == 0 or bool((plen == 0).any()):
        return None
    group, firsts = prompt_groups(input_ids, plen)
    if len(firsts) == B:
        return None
    device = input_ids.device

    # 1. the U distinct prompts, left-padded to P columns (all end at column P - 1), positions from 0
    first = torch.tensor(firsts, device=device)
    P = int(plen[first].max())
    position = torch.arange(P, device=device)[None, :] - (P - plen[first])[:, None]  # (U, P), < 0 on padding
    prompt_mask = (position >= 0).long()
    prompt_ids = torch.where(position >= 0, input_ids[first].gather(1, position.clamp(min=0)), 0)
    out = backbone(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position.clamp(min=0), use_cache=True)
    prompt_h, cache = out.last_hidden_state, out.cache  # (U, P, H)
    if cache is None:  # a backbone that keeps no cache (activation checkpointing turns it off): no sharing
        return None

    # 2. every response (R columns), continuing at position plen from its prompt's cache row
    t = torch.arange(T, device=device)[None, :]  # (1, T) output columns
    in_prompt, in_trace = (t < plen[:, None])[..., None], (t < lengths[:, None])[..., None]
    from_prompt = take_columns(prompt_h[group], (t - plen[:, None] + P).clamp(0, P - 1))
    rlen = lengths - plen
    R = int(rlen.max())
    if R == 0:
        return torch.where(in_prompt, from_prompt, torch.zeros_like(from_prompt))
    r = torch.arange(R, device=device)[None, :]
    resp_valid = r < rlen[:, None]
    resp_ids = torch.where(resp_valid, input_ids.gather(1, (plen[:, None] + r).clamp(max=T - 1)), 0)
    cache.reorder_cache(group)  # (U, ...) -> (B, ...) rows, by index_select: gradients reach the prompt pass
    out = backbone(
        input_ids=resp_ids,
        attention_mask=torch.cat([prompt_mask[group], resp_valid.long()], dim=1),
        position_ids=plen[:, None] + r,
        cache=cache,
        use_cache=True,
    )
    from_response = take_columns(out.last_hidden_state, (t - plen[:, None]).clamp(0, R - 1))
    return torch.where(in_prompt, from_prompt, torch.where(in_trace, from_response, torch.zeros_like(from_response)))
