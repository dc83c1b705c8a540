r"""Scores and picks, the torch-free core (DESIGN §2.1–2.3, §2.5): how per-token values become step scores, trace
scores, a pick among candidates and a predicted first error. Reranking, localisation, search, the reward server and
the report all read them from here; it imports numpy and nothing that loads a model.

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

Sums run in float64. A non-finite token value raises `NonFiniteScore`: a NaN reward must never reach a ranking
(DESIGN §5). The same aggregations score a search's partial trace from its step scores (`last`, `min`, `mean`).

Picks:

    best_index(s)        argmax_i s_i, the lowest index among ties (best-of-N)
    top_k(s, k)          the k highest, ties to the lower index (a beam's selection)
    first_below(v, τ)    min{k : v_k < τ}, -1 when none (the predicted first wrong step)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from rairl.registry import Registry

Span = tuple[int, int]
AGGREGATE_DISCOUNT = 0.9  # γ of the `discounted` aggregation (the settings' default, `RewardSettings`)
Aggregation = Callable[[np.ndarray, np.ndarray, float], float]
AGGREGATIONS: Registry[Aggregation] = Registry("aggregation")
register = AGGREGATIONS.register
STEP_REDUCTIONS: Registry[Callable[[np.ndarray], float]] = Registry(
    "step_reduce", {"last": lambda r: r[-1], "min": lambda r: r.min()}
)
SEARCH_AGGREGATES = ("last", "min", "mean")  # a partial trace's score from its step scores
_ANSWER_LINE_RE = re.compile(r"^[ \t]*####.*$", re.MULTILINE)


class NonFiniteScore(ValueError):
    """A NaN or infinite token value; `index` is the trace's position in the scored batch."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


@register("mean")
def _mean(r: np.ndarray, answer_mask: np.ndarray, gamma: float) -> float:
    return r.mean(dtype=np.float64)


@register("min")
def _min(r: np.ndarray, answer_mask: np.ndarray, gamma: float) -> float:
    return r.min()


@register("last")
def _last(r: np.ndarray, answer_mask: np.ndarray, gamma: float) -> float:
    return r[-1]


@register("sum")
def _sum(r: np.ndarray, answer_mask: np.ndarray, gamma: float) -> float:
    return r.sum(dtype=np.float64)


@register("discounted")
def _discounted(r: np.ndarray, answer_mask: np.ndarray, gamma: float) -> float:
    exponents = np.arange(len(r) - 1, -1, -1, dtype=np.float64)  # n-t for t = 1..n
    return float((np.power(gamma, exponents) * r.astype(np.float64)).sum())


@register("answer_span")
def _answer_span(r: np.ndarray, answer_mask: np.ndarray, gamma: float) -> float:
    return r[answer_mask].mean(dtype=np.float64)


def check_names(aggregates: Sequence[str] = (), step_reduce: str = "last") -> None:
    """Raise ValueError (with a did-you-mean hint) for an unknown aggregation or step reduction."""
    for name in aggregates:
        AGGREGATIONS.lookup(name)
    STEP_REDUCTIONS.lookup(step_reduce)


def check_finite(values: np.ndarray, index: int = 0) -> None:
    """Raise `NonFiniteScore` if the token values of trace `index` hold NaN or ±inf."""
    bad = ~np.isfinite(values)
    if bad.any():
        where = np.flatnonzero(bad).tolist()
        raise NonFiniteScore(
            index,
            f"trace {index}: non-finite reward at response token(s) {where[:10]}; "
            "the scorer produced NaN/inf (check the model's weights and dtype)",
        )


def aggregate(
    name: str, values: ArrayLike, answer_mask: ArrayLike | None = None, gamma: float = AGGREGATE_DISCOUNT
) -> float:
    """Trace score of the token values `values` (n,) by aggregation `name` (see the module docstring).

    `answer_mask` (n,) bool marks the answer-line tokens (only `answer_span` reads it; default: the last token).
    """
    fn = AGGREGATIONS.lookup(name)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"aggregate needs one response's token values, shape (n,), n >= 1; got {values.shape}")
    if answer_mask is None:
        answer_mask = np.zeros(len(values), dtype=bool)
        answer_mask[-1] = True
    answer_mask = np.asarray(answer_mask)
    if answer_mask.shape != values.shape or answer_mask.dtype != bool or not answer_mask.any():
        raise ValueError(f"answer_mask must be a bool (n,) = {values.shape} mask with at least one token set")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    check_finite(values)
    return float(fn(values, answer_mask, gamma))


def step_token_ranges(step_ends: Sequence[int], n_tokens: int) -> list[range]:
    """The token indices each step owns, from its last token's index (module docstring). Ends must not decrease."""
    ranges, previous = [], -1
    for end in step_ends:
        if not 0 <= end < n_tokens or end < previous:
            raise ValueError(f"step ends must be non-decreasing token indices 0..{n_tokens - 1}, got {list(step_ends)}")
        ranges.append(range(previous + 1 if end > previous else end, end + 1))
        previous = end
    return ranges


def step_scores(values: ArrayLike, step_ends: Sequence[int], step_reduce: str = "last") -> list[float]:
    """One score per step: `step_reduce` ("last" | "min") of the token values `values` (n,) the step owns."""
    reduce = STEP_REDUCTIONS.lookup(step_reduce)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 1:
        raise ValueError(f"step_scores needs the token values of one response, shape (n,); got {values.shape}")
    return [float(reduce(values[list(r)])) for r in step_token_ranges(step_ends, len(values))]


def answer_span(response: str) -> Span | None:
    """Character span of the final `#### …` line, else of the last non-blank line; None for a blank response."""
    found = list(_ANSWER_LINE_RE.finditer(response))
    if found:
        return found[-1].span()
    lines = [m.span() for m in re.finditer(r"[^\n]*\S[^\n]*", response)]
    return lines[-1] if lines else None


def answer_token_mask(response: str, offsets: Sequence[Span]) -> np.ndarray:
    """(n,) bool: the tokens whose characters overlap `answer_span(response)`; the last token when none does."""
    mask = np.zeros(len(offsets), dtype=bool)
    span = answer_span(response)
    if span is not None:
        a, b = span
        mask = np.array([s < b and e > a for s, e in offsets], dtype=bool)
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

    tokens: list[np.ndarray]
    token_spans: list[list[Span]]
    steps: list[list[float]]
    step_spans: list[list[Span]]
    traces: dict[str, list[float]]


def trace_views(
    values: Sequence[ArrayLike],
    step_ends: Sequence[Sequence[int]],
    answer_masks: Sequence[ArrayLike],
    *,
    aggregates: Sequence[str],
    step_reduce: str = "last",
    gamma: float = AGGREGATE_DISCOUNT,
) -> tuple[list[list[float]], dict[str, list[float]]]:
    """Step and trace scores of B responses from their token values (each (n_b,)); NaN raises `NonFiniteScore`."""
    check_names(aggregates, step_reduce)
    steps: list[list[float]] = []
    traces: dict[str, list[float]] = {name: [] for name in aggregates}
    for b, (v, ends, mask) in enumerate(zip(values, step_ends, answer_masks, strict=True)):
        v = np.asarray(v, dtype=np.float32)
        check_finite(v, b)
        if len(v) == 0:
            raise ValueError(f"trace {b} has no response tokens to score")
        steps.append(step_scores(v, ends, step_reduce))
        for name in aggregates:
            traces[name].append(aggregate(name, v, mask, gamma))
    return steps, traces


# ---------------------------------------------------------------------------------------------------------- picks
def best_index(scores: Sequence[float] | np.ndarray) -> int:
    """Index of the highest score; among equal scores the lowest index. NaN raises (never a silent random pick)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1 or len(scores) == 0:
        raise ValueError(f"need one score per sample (1-D, N >= 1), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"scores hold NaN at samples {np.flatnonzero(np.isnan(scores)).tolist()}; fix the scorer")
    return int(np.argmax(scores))


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """The indices of the k highest scores, best first, ties broken by the lower index (a stable sort)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


def search_score(step_scores: Sequence[float], how: str) -> float:
    """A partial trace's score from its step scores by `how` (`SEARCH_AGGREGATES`); -inf with no step yet."""
    if how not in SEARCH_AGGREGATES:
        raise ValueError(f"a partial trace's score aggregates its steps by one of {SEARCH_AGGREGATES}, got {how!r}")
    return aggregate(how, step_scores) if len(step_scores) else -np.inf


# ---------------------------------------------------------------------------------------------- first errors
def first_below(step_scores: Sequence[float], threshold: float) -> int:
    """Index of the first step whose score is below `threshold`, -1 when there is none (a predicted first error)."""
    return next((i for i, s in enumerate(step_scores) if s < threshold), -1)


def predict(step_scores: Sequence[Sequence[float]], threshold: float) -> list[int]:
    """First step below `threshold` of each trace, -1 for none."""
    return [first_below(steps, threshold) for steps in step_scores]


def joined_spans(steps: Sequence[str]) -> list[Span]:
    """The character span of each step in `"\\n".join(steps)` (exact even when a step holds newlines)."""
    spans, start = [], 0
    for step in steps:
        spans.append((start, start + len(step)))
        start += len(step) + 1
    return spans
