r"""Best-of-N selection: which of a question's N samples each method picks, and how often that pick is right
(DESIGN §2.2). Per question, for a selection method m:

    <scorer>/<agg>   success@1|N: the sample with the highest score is correct (ties at the top: a uniform pick)
    majority         the most common (numerically normalised) answer is correct
    random           a uniform pick: mean(correct)
    oracle@N         some sample is correct

and pass@k = 1 - C(N-c, k) / C(N, k) (unbiased); `gain[m]` is the paired difference m − pass@1 over questions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rairl.evaluation.metrics import (
    majority_vote,
    oracle_at_n,
    paired_diff,
    pass_at_k,
    random_pick,
    success_at_1_of_n,
    summarize,
)
from rairl.scores import best_index
from rairl.tasks.answers import parse_number


def group_by_question(rows: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Row indices of each question, questions in first-appearance order, samples in file order."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(str(row["id"]), []).append(i)
    return groups


def normalise_answer(answer: str | None) -> str | None:
    """Votes group equal numbers ("4.0", "4", "$4"); other answers by their stripped text."""
    if answer is None:
        return None
    number = parse_number(answer)
    return str(number) if number is not None else answer.strip()


def selection_values(
    groups: dict[str, list[int]], correct: np.ndarray, answers: list[str | None], scores: dict[str, np.ndarray]
) -> dict[str, list[float]]:
    """Per-question value of every selection method (module docstring); `scores[method]` holds one score per row."""
    methods: dict[str, Callable[[list[int]], float]] = {
        "oracle@N": lambda idx: oracle_at_n(correct[idx]),
        "random": lambda idx: random_pick(correct[idx]),
        "majority": lambda idx: majority_vote([answers[i] for i in idx], correct[idx]),
    }
    for name, values in scores.items():
        methods[name] = lambda idx, v=values: success_at_1_of_n(v[idx], correct[idx])
    return {name: [fn(idx) for idx in groups.values()] for name, fn in methods.items()}


def rerank_metrics(
    groups: dict[str, list[int]],
    correct: np.ndarray,
    answers: list[str | None],
    scores: dict[str, np.ndarray],
    ks: list[int],
    seed: int = 0,
) -> dict[str, Any]:
    """`{"pass@k": {...}, "select": {...}, "gain": {...}}`, every entry `summarize()`-shaped."""
    counts = [(len(idx), int(correct[idx].sum())) for idx in groups.values()]
    pass_k = {f"pass@{k}": summarize([pass_at_k(n, c, k) for n, c in counts], seed=seed) for k in ks}
    pass1 = [c / n for n, c in counts]
    values = selection_values(groups, correct, answers, scores)
    return {
        "pass@k": pass_k,
        "select": {name: summarize(v, seed=seed) for name, v in values.items()},
        "gain": {name: paired_diff(v, pass1, seed=seed) for name, v in values.items()},
    }


def picked_by(groups: dict[str, list[int]], scores: dict[str, np.ndarray], n_rows: int) -> list[list[str]]:
    """For each row, the score-based methods whose pick (highest score, first among ties) it is."""
    out: list[list[str]] = [[] for _ in range(n_rows)]
    for name, values in scores.items():
        for idx in groups.values():
            out[idx[best_index(values[idx])]].append(name)
    return out
