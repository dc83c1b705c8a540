r"""Ranking metrics of first-error localisation: Hit@1, Hit@k and MAP (the R-AIRL authors' newer metrics).

Threshold-free: they ask whether the step a scorer finds *worst* is the first wrong one, not whether a calibrated
threshold flags it. On an erroneous trace with step scores s_1..s_n (higher = better) and first wrong step y, steps
are ranked from the lowest score up, ties broken by the earlier step (a stable sort):

    rank(y) = 1 + |{k : s_k < s_y}| + |{k < y : s_k = s_y}|
    Hit@k   = 1[rank(y) ≤ k]                       (Hit@1: the lowest-scored step is the first error)
    AP      = (1/|R|) Σ_{r ∈ R} precision@rank(r),  R = {y}  ⇒  AP = 1 / rank(y)
    MAP     = mean of AP over the erroneous traces

Correct traces (y = -1) have no relevant step and are left out, as in the authors' tables. With step labels only
the first wrong step is relevant, so MAP here equals the mean reciprocal rank; the authors' token-level MAP counts
every edited token of a perturbation as relevant, which step labels do not record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rairl.evaluation.metrics import summarize
from rairl.evaluation.processbench import NO_ERROR


def error_rank(step_scores: Sequence[float], label: int) -> int:
    """rank(y): 1-based position of step `label` when the steps are sorted by score, lowest first (ties: earlier)."""
    if not 0 <= label < len(step_scores):
        raise ValueError(f"label {label} is not a step index of a trace with {len(step_scores)} steps")
    s_y = step_scores[label]
    return 1 + sum(s < s_y for s in step_scores) + sum(s == s_y for s in step_scores[:label])


def ranking_metrics(
    step_scores: Sequence[Sequence[float]], labels: Sequence[int], ks: Sequence[int] = (1, 3), seed: int = 0
) -> dict[str, dict[str, Any]]:
    """`{"hit@1", "hit@3", ..., "map"}` over the erroneous traces, each `{"mean", "ci95", "n"}` (bootstrap over
    traces); mean None when no trace is erroneous."""
    if len(step_scores) != len(labels):
        raise ValueError(f"need one list of step scores per label, got {len(step_scores)} and {len(labels)}")
    ranks = [error_rank(steps, label) for steps, label in zip(step_scores, labels) if label != NO_ERROR]
    out = {f"hit@{k}": summarize([float(r <= k) for r in ranks], seed=seed) for k in ks}
    out["map"] = summarize([1.0 / r for r in ranks], seed=seed)
    return out
