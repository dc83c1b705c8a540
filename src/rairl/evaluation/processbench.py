"""First-error-step localisation metrics as in ProcessBench (Zheng et al., 2024), and its JSONL format.

Each trace has a label `y` = 0-based index of its first wrong step, or -1 when every step is right, and a
prediction `ŷ` in the same form. With E = traces with `y >= 0` and C = traces with `y = -1`:

    acc_error   = mean_{E} [ŷ = y]        (the exact first wrong step is found)
    acc_correct = mean_{C} [ŷ = -1]       (no error is flagged on a correct trace)
    F1          = 2 · acc_error · acc_correct / (acc_error + acc_correct)

Confidence intervals resample traces within E and within C (a stratified bootstrap: both accuracies
stay defined in every resample), F1's from the same resamples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rairl.io import DataError, read_jsonl, require, write_jsonl

NO_ERROR = -1


@dataclass(frozen=True)
class LabelledTrace:
    """A solution split into steps, `label` = index of its first wrong step (-1: none); `meta` keeps other fields."""

    id: str
    problem: str
    steps: tuple[str, ...]
    label: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def f1(acc_error: float, acc_correct: float) -> float:
    """Harmonic mean of the two accuracies (0 when both are 0)."""
    total = acc_error + acc_correct
    return 0.0 if total == 0 else 2 * acc_error * acc_correct / total


def _check(predicted: Sequence[int], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape or predicted.ndim != 1:
        raise ValueError(f"need one prediction per labelled trace (1-D), got shapes {predicted.shape}, {labels.shape}")
    for name, x in (("predictions", predicted), ("labels", labels)):
        if len(x) and (not np.issubdtype(x.dtype, np.integer) or x.min() < NO_ERROR):
            raise ValueError(f"{name} must be step indices >= 0 or -1 (no error), got {x.tolist()[:10]}")
    return predicted.astype(int), labels.astype(int)


def processbench_metrics(
    predicted: Sequence[int], labels: Sequence[int], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """`{"acc_error", "acc_correct", "f1"}`, each `{"mean", "ci95": [lo, hi], "n"}` (F1's n = all traces).

    A metric whose class is absent (no erroneous or no correct trace) has mean and interval None, and so has F1.
    """
    predicted, labels = _check(predicted, labels)
    wrong, right = labels != NO_ERROR, labels == NO_ERROR
    hit_error = (predicted[wrong] == labels[wrong]).astype(float)  # (|E|,)
    hit_correct = (predicted[right] == NO_ERROR).astype(float)  # (|C|,)

    rng = np.random.default_rng(seed)
    boot = {}
    for name, hits in (("acc_error", hit_error), ("acc_correct", hit_correct)):
        if len(hits):
            boot[name] = hits[rng.integers(0, len(hits), size=(n_boot, len(hits)))].mean(axis=1)  # (n_boot,)

    def summary(mean: float | None, samples: np.ndarray | None, n: int) -> dict[str, Any]:
        if mean is None or samples is None:
            return {"mean": None, "ci95": [None, None], "n": n}
        lo, hi = np.quantile(samples, [0.025, 0.975])
        return {"mean": float(mean), "ci95": [float(lo), float(hi)], "n": n}

    out = {
        name: summary(hits.mean() if len(hits) else None, boot.get(name), len(hits))
        for name, hits in (("acc_error", hit_error), ("acc_correct", hit_correct))
    }
    if len(hit_error) and len(hit_correct):
        f1_boot = np.array([f1(a, c) for a, c in zip(boot["acc_error"], boot["acc_correct"])])
        out["f1"] = summary(f1(hit_error.mean(), hit_correct.mean()), f1_boot, len(labels))
    else:
        out["f1"] = summary(None, None, len(labels))
    return out


def read_processbench(path: str | os.PathLike) -> list[LabelledTrace]:
    """Labelled traces from JSONL rows `{"id", "problem", "steps": [str, ...], "label"}`.

    `id` is optional (default `<file stem>-<line>`); other fields are kept in `meta`. Raises `DataError`
    naming the file, line and field for a missing or mistyped field, an empty step list, a label outside
    `-1..len(steps)-1`, a repeated id, or a file without traces.
    """
    path = Path(path)
    traces, seen = [], {}
    for line, row in read_jsonl(path):
        trace_id = require(row, "id", path, line, str) if "id" in row else f"{path.stem}-{line}"
        if trace_id in seen:
            raise DataError(path, line, "id", f"{trace_id!r} repeats line {seen[trace_id]}")
        seen[trace_id] = line
        problem = require(row, "problem", path, line, str)
        steps = require(row, "steps", path, line, list)
        if not steps:
            raise DataError(path, line, "steps", "empty list; a trace needs at least one step")
        for i, step in enumerate(steps):
            if not isinstance(step, str):
                raise DataError(path, line, "steps", f"step {i} is {type(step).__name__}, expected str")
        label = require(row, "label", path, line, int)
        if isinstance(label, bool) or not NO_ERROR <= label < len(steps):
            raise DataError(
                path, line, "label", f"must be -1 (no error) or a step index 0..{len(steps) - 1}, got {label!r}"
            )
        meta = {k: v for k, v in row.items() if k not in {"id", "problem", "steps", "label"}}
        traces.append(LabelledTrace(trace_id, problem, tuple(steps), label, meta))
    if not traces:
        raise DataError(path, None, None, "no traces (the file is empty)")
    return traces


def write_processbench(path: str | os.PathLike, traces: Sequence[LabelledTrace]) -> None:
    """Write traces in the format `read_processbench` reads (atomically); `meta` fields are written too."""
    rows = [{"id": t.id, "problem": t.problem, "steps": list(t.steps), "label": t.label, **t.meta} for t in traces]
    write_jsonl(path, rows)
