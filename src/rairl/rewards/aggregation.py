r"""Aggregation: from the per-token rewards r_1..r_n of one response to step scores and a trace score (DESIGN §2.1).

Step scores. Step k ends at token e_k, the token holding its last character (`rairl.traces.step_end_tokens`), and owns
the tokens e_{k-1}+1 .. e_k (step 0 starts at token 0; a step that ends inside the very token that ended the previous
step owns that one token). Its score, by `step_reduce`:

    last   r_{e_k}                  the reward once the whole step is written (a step-granularity label sits here)
    min    min_{t in step k} r_t    its worst token

Trace scores over the n response tokens (EOS included when the response carries one), by `aggregate`:

    mean         (1/n) Σ_t r_t
    min          min_t r_t
    last         r_n
    sum          Σ_t r_t
    discounted   Σ_t γ^{n-t} r_t          end-weighted; γ = 0 gives `last`, γ = 1 gives `sum` (weights ≤ 1: no overflow)
    answer_span  mean of r_t over the tokens that overlap the final `#### …` line
                 (the last non-blank line when there is no such line; the last token for an empty response)

A non-finite token value raises `NonFiniteScore`: a NaN reward must never reach a ranking (DESIGN §5).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rairl.registry import Registry

Span = tuple[int, int]
Aggregation = Callable[[Tensor, Tensor, float], Tensor]
AGGREGATIONS: Registry[Aggregation] = Registry("aggregation")
register = AGGREGATIONS.register
StepReduction = Callable[[Tensor], Tensor]
STEP_REDUCTIONS: Registry[StepReduction] = Registry("step_reduce", {"last": lambda r: r[-1], "min": lambda r: r.min()})
_ANSWER_LINE_RE = re.compile(r"^[ \t]*####.*$", re.MULTILINE)


class NonFiniteScore(ValueError):
    """A NaN or infinite token value; `index` is the trace's position in the scored batch."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


@register("mean")
def _mean(r: Tensor, answer_mask: Tensor, gamma: float) -> Tensor:
    return r.mean()


@register("min")
def _min(r: Tensor, answer_mask: Tensor, gamma: float) -> Tensor:
    return r.min()


@register("last")
def _last(r: Tensor, answer_mask: Tensor, gamma: float) -> Tensor:
    return r[-1]


@register("sum")
def _sum(r: Tensor, answer_mask: Tensor, gamma: float) -> Tensor:
    return r.sum()


@register("discounted")
def _discounted(r: Tensor, answer_mask: Tensor, gamma: float) -> Tensor:
    exponents = torch.arange(len(r) - 1, -1, -1, dtype=torch.float64)  # n-t for t = 1..n
    return (torch.pow(torch.tensor(gamma, dtype=torch.float64), exponents) * r.double()).sum()


@register("answer_span")
def _answer_span(r: Tensor, answer_mask: Tensor, gamma: float) -> Tensor:
    return r[answer_mask].mean()


def check_names(aggregates: Sequence[str] = (), step_reduce: str = "last") -> None:
    """Raise ValueError (with a did-you-mean hint) for an unknown aggregation or step reduction."""
    for name in aggregates:
        AGGREGATIONS.lookup(name)
    STEP_REDUCTIONS.lookup(step_reduce)


def check_finite(values: Tensor, index: int = 0) -> None:
    """Raise `NonFiniteScore` if the token values of trace `index` hold NaN or ±inf."""
    bad = ~torch.isfinite(values)
    if bad.any():
        where = torch.nonzero(bad).squeeze(1).tolist()
        raise NonFiniteScore(
            index,
            f"trace {index}: non-finite reward at response token(s) {where[:10]}; "
            "the scorer produced NaN/inf (check the model's weights and dtype)",
        )


def aggregate(name: str, values: Tensor, answer_mask: Tensor | None = None, gamma: float = 0.9) -> float:
    """Trace score of the token values `values` (n,) by aggregation `name` (see the module docstring).

    `answer_mask` (n,) bool marks the answer-line tokens (only `answer_span` reads it; default: the last token).
    """
    fn = AGGREGATIONS.lookup(name)
    if values.dim() != 1 or len(values) == 0:
        raise ValueError(f"aggregate needs one response's token values, shape (n,), n >= 1; got {tuple(values.shape)}")
    if answer_mask is None:
        answer_mask = torch.zeros(len(values), dtype=torch.bool)
        answer_mask[-1] = True
    if answer_mask.shape != values.shape or answer_mask.dtype != torch.bool or not answer_mask.any():
        raise ValueError(f"answer_mask must be a bool (n,) = {tuple(values.shape)} mask with at least one token set")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    check_finite(values)
    return float(fn(values.float(), answer_mask, gamma))


def step_token_ranges(step_ends: Sequence[int], n_tokens: int) -> list[range]:
    """The token indices each step owns, from its last token's index (module docstring). Ends must not decrease."""
    ranges, previous = [], -1
    for end in step_ends:
        if not 0 <= end < n_tokens or end < previous:
            raise ValueError(f"step ends must be non-decreasing token indices 0..{n_tokens - 1}, got {list(step_ends)}")
        ranges.append(range(previous + 1 if end > previous else end, end + 1))
        previous = end
    return ranges


def step_scores(values: Tensor, step_ends: Sequence[int], step_reduce: str = "last") -> list[float]:
    """One score per step: `step_reduce` ("last" | "min") of the token values `values` (n,) the step owns."""
    reduce = STEP_REDUCTIONS.lookup(step_reduce)
    if values.dim() != 1:
        raise ValueError(f"step_scores needs the token values of one response, shape (n,); got {tuple(values.shape)}")
    return [float(reduce(values[list(r)])) for r in step_token_ranges(step_ends, len(values))]


def answer_span(response: str) -> Span | None:
    """Character span of the final `#### …` line, else of the last non-blank line; None for a blank response."""
    found = list(_ANSWER_LINE_RE.finditer(response))
    if found:
        return found[-1].span()
    lines = [m.span() for m in re.finditer(r"[^\n]*\S[^\n]*", response)]
    return lines[-1] if lines else None


def answer_token_mask(response: str, offsets: Sequence[Span]) -> Tensor:
    """(n,) bool: the tokens whose characters overlap `answer_span(response)`; the last token when none does."""
    mask = torch.zeros(len(offsets), dtype=torch.bool)
    span = answer_span(response)
    if span is not None:
        a, b = span
        mask = torch.tensor([s < b and e > a for s, e in offsets], dtype=torch.bool)
    if len(offsets) and not mask.any():
        mask[-1] = True
    return mask


@dataclass
class TraceScores:
    """Three views of one forward pass over B traces; index b is the b-th input trace.

    tokens[b]        (n_b,) float32 token values (a reward model's backfilled r_t, or log-probs ℓ_t), one per
                     response token of the tokenizer the caller works in
    token_spans[b]   the character span of each of those tokens in the response text (EOS: a zero-width span at the end)
    steps[b]         one score per step (`step_reduce` of its tokens)
    step_spans[b]    the character span of each step
    traces[name][b]  the trace score by aggregation `name`
    """

    tokens: list[Tensor]
    token_spans: list[list[Span]]
    steps: list[list[float]]
    step_spans: list[list[Span]]
    traces: dict[str, list[float]]


def trace_views(
    values: Sequence[Tensor],
    step_ends: Sequence[Sequence[int]],
    answer_masks: Sequence[Tensor],
    *,
    aggregates: Sequence[str],
    step_reduce: str = "last",
    gamma: float = 0.9,
) -> tuple[list[list[float]], dict[str, list[float]]]:
    """Step and trace scores of B responses from their token values (each (n_b,)); NaN raises `NonFiniteScore`."""
    check_names(aggregates, step_reduce)
    steps: list[list[float]] = []
    traces: dict[str, list[float]] = {name: [] for name in aggregates}
    for b, (v, ends, mask) in enumerate(zip(values, step_ends, answer_masks, strict=True)):
        check_finite(v, b)
        if len(v) == 0:
            raise ValueError(f"trace {b} has no response tokens to score")
        steps.append(step_scores(v, ends, step_reduce))
        for name in aggregates:
            traces[name].append(aggregate(name, v, mask, gamma))
    return steps, traces
