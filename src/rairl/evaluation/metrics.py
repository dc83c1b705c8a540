"""Answer-level metrics over sampled responses, per question, and their bootstrap confidence intervals.

pass@k, the unbiased estimator of Chen et al. (2021) from `n` samples of which `c` are correct:

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n-c+1}^{n} (1 - k / i)

(the product form never builds large binomials). success@1|N scores N samples and keeps the best;
oracle@N is 1 if any sample is correct; majority vote keeps the most common answer; a random pick
succeeds with probability `mean(correct)`. Every per-question value is summarised over questions as
`{"mean", "ci95": [lo, hi], "n"}` with a percentile bootstrap that resamples questions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rairl.scores import best_index


def parse_ks(text: str) -> list[int]:
    """`"1,4,8"` -> `[1, 4, 8]` (sorted, unique)."""
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"k must be a comma-separated list of integers such as '1,4,8', got {text!r}") from None
    if not ks:
        raise ValueError(f"k must name at least one value, such as '1,4,8', got {text!r}")
    return ks


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of `k` samples drawn without replacement from `n` (with `c` correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every draw of k samples holds a correct one
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def bootstrap_ci(
    values: Sequence[Any] | np.ndarray,
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat(values)` at level `1 - alpha`.

    `values`: array whose first axis indexes questions (rows are resampled with replacement, `n_boot` times);
    `stat` maps a resampled array of the same shape to a number.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 0 or len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if np.isnan(values).any():
        raise ValueError("bootstrap_ci got NaN values; a NaN score or metric must be fixed upstream, not averaged")
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < alpha < 1, got n_boot={n_boot}, alpha={alpha}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(values), size=(n_boot, len(values)))  # (n_boot, n_questions)
    stats = np.array([stat(values[r]) for r in rows], dtype=float)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def summarize(values: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """`{"mean", "ci95": [lo, hi], "n"}` over questions; with no values, mean and interval are None."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"summarize takes one value per question (1-D), got shape {values.shape}")
    if len(values) == 0:
        return {"mean": None, "ci95": [None, None], "n": 0}
    lo, hi = bootstrap_ci(values, np.mean, n_boot=n_boot, seed=seed)
    return {"mean": float(values.mean()), "ci95": [lo, hi], "n": int(len(values))}


def paired_diff(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, n_boot: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Summary of the per-question differences `a - b` (e.g. success@1|8 - pass@1 on the same questions)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_diff needs two 1-D arrays over the same questions, got shapes {a.shape}, {b.shape}")
    return summarize(a - b, n_boot=n_boot, seed=seed)


def _check_group(correct: Sequence[bool] | np.ndarray, other: Sequence | np.ndarray | None = None) -> np.ndarray:
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 1 or len(correct) == 0:
        raise ValueError(f"need the N >= 1 samples of one question (1-D), got shape {correct.shape}")
    if other is not None and len(other) != len(correct):
        raise ValueError(f"got {len(other)} scores/answers for {len(correct)} samples")
    return correct


def success_at_1_of_n(scores: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray) -> float:
    """success@1|N of one question: whether the highest-scored sample is correct.

    Ties at the top score count as a uniformly random choice among the tied samples, computed exactly: the
    result is the fraction of tied samples that are correct (deterministic, and a constant score gives the
    random-pick baseline rather than whatever sample happens to come first). NaN scores raise.
    """
    correct = _check_group(correct, scores)
    scores = np.asarray(scores, dtype=float)
    top = scores[best_index(scores)]
    return float(correct[scores == top].mean())


def oracle_at_n(correct: Sequence[bool] | np.ndarray) -> float:
    """oracle@N of one question: 1 if any of the N samples is correct."""
    return float(_check_group(correct).any())


def majority_vote(answers: Sequence[str | None], correct: Sequence[bool] | np.ndarray) -> float:
    """Majority vote of one question: whether the most common extracted answer is correct.

    Samples without an answer (None) do not vote; with no votes at all the result is 0. Ties between
    answers count as a uniformly random choice among them (the mean correctness of the tied answers).
    Answers are grouped by exact string: pass them normalised (e.g. "4.0" -> "4") when a task allows.
    """
    correct = _check_group(correct, answers)
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    winners = [a for a, count in votes.items() if count == top]
    # An answer's correctness is that of its samples (all equal when the verifier is a function of the answer).
    return float(np.mean([correct[[x == w for x in answers]].mean() for w in winners]))


def random_pick(correct: Sequence[bool] | np.ndarray) -> float:
    """Expected accuracy of picking one of the N samples uniformly at random: `mean(correct)`."""
    return float(_check_group(correct).mean())
