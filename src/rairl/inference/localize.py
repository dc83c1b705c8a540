r"""Predict the first wrong step of a trace from step scores (DESIGN §2.3); the command is `rairl.commands.localize`.

    ŷ = min{k : score_k < τ}   (-1 when no step falls below τ)

Learned reward: score_k = the step's value (`step_reduce` "last": at its last token; "min": its worst token; the
default follows the reward's score form: "min" for f = s + ℓ, "last" for the logit s), τ = 0 by default (D = 1/2: the
discriminator finds the prefix more likely policy than expert). Base-policy likelihood baseline (`--policy`): score_k
= min of ℓ_t = log π(y_t | x, y_<t) over the step's tokens, τ = log 0.1 by default (a token the policy gives less than
10%). `--calibrate` sets each τ to the value maximising F1 on a validation benchmark built the same way from another
split / file / seed (`--val_*`), never on the test traces. Metrics as ProcessBench: accuracy on erroneous traces
(exact step), on correct traces (no flag), F1, with 95% CIs. Labelled traces come from `rairl.inference.labelled`
(injected | natural | file).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rairl.evaluation.metrics import summarize
from rairl.evaluation.processbench import NO_ERROR, LabelledTrace, f1
from rairl.inference.labelled import joined, joined_spans
from rairl.inference.likelihood import first_below
from rairl.rewards.aggregation import NonFiniteScore

MAX_CANDIDATES = 4096  # thresholds tried by calibration (quantiles beyond that)


def predict(step_scores: list[list[float]], threshold: float) -> list[int]:
    """First step below `threshold` of each trace, -1 for none."""
    return [first_below(steps, threshold) for steps in step_scores]


def calibrate_threshold(step_scores: list[list[float]], labels: list[int]) -> tuple[float, float]:
    """(τ, F1): the threshold that maximises ProcessBench F1 of `predict(step_scores, τ)` on labelled traces.

    Candidates: midpoints between consecutive distinct step scores, and one above the largest (flag step 0
    everywhere); the lowest τ wins a tie. Both classes (erroneous and correct traces) must be present.
    """
    labels_arr = np.asarray(labels)
    n_correct = int((labels_arr == NO_ERROR).sum())
    if n_correct in (0, len(labels_arr)):
        raise ValueError(
            f"calibration needs both erroneous and correct traces; the validation benchmark has "
            f"{len(labels_arr) - n_correct} erroneous and {n_correct} correct: use a larger or another validation set"
        )
    width = max(len(s) for s in step_scores)
    mat = np.full((len(step_scores), width), np.inf)  # (M, S), +inf pads: never below a threshold
    for i, steps in enumerate(step_scores):
        mat[i, : len(steps)] = steps
    values = np.unique(mat[np.isfinite(mat)])
    if len(values) > MAX_CANDIDATES:
        values = np.unique(np.quantile(values, np.linspace(0, 1, MAX_CANDIDATES)))
    candidates = np.concatenate([(values[:-1] + values[1:]) / 2, values[-1:] + 1.0])
    wrong, right = labels_arr != NO_ERROR, labels_arr == NO_ERROR
    best = (float(candidates[-1]), -1.0)
    for tau in candidates:
        below = mat < tau  # (M, S)
        pred = np.where(below.any(1), below.argmax(1), NO_ERROR)
        score = f1(float((pred[wrong] == labels_arr[wrong]).mean()), float((pred[right] == NO_ERROR).mean()))
        if score > best[1]:
            best = (float(tau), score)
    return best


def step_scores_of(scorer, traces: list[LabelledTrace], step_reduce: str, where: str) -> list[list[float]]:
    """Step scores of labelled traces (steps joined by newlines, spans exact); NaN raises naming the trace."""
    try:
        scored = scorer.score(
            [t.meta["prompt"] for t in traces],
            [joined(t) for t in traces],
            aggregates=(),
            step_spans=[joined_spans(t.steps) for t in traces],
            step_reduce=step_reduce,
        )
    except NonFiniteScore as err:
        raise ValueError(f"{where}: trace {traces[err.index].id!r}: {err}") from None
    return scored.steps


def by_perturbation(traces: list[LabelledTrace], predicted: list[int], seed: int) -> dict[str, Any]:
    """acc_error of each injected perturbation (exact step found), when the traces record one."""
    groups: dict[str, list[float]] = {}
    for t, p in zip(traces, predicted):
        if t.meta.get("perturbation"):
            groups.setdefault(t.meta["perturbation"], []).append(float(p == t.label))
    return {name: summarize(hits, seed=seed) for name, hits in sorted(groups.items())}
