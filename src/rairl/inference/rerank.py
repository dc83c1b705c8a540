"""Best-of-N selection by the learned reward, against the baselines (DESIGN §2.2); the command is
`rairl.commands.rerank`.

Input: a `rairl sample` JSONL (N samples per question: id, sample, prompt, response, answer, correct). Each
question's samples are scored by the learned reward (`reward/<agg>`, every aggregation) and, with `--policy`, by the
base policy's token log-probs ℓ_t (`likelihood/<agg>`, mean | min); the selection methods and their figures
(success@1|N, majority, random, oracle@N, pass@k, gains over pass@1) are `rairl.evaluation.selection`'s. Writes
`metrics.json` and `scored.jsonl` (every sample with its trace scores and the methods that pick it) to `output_dir`.
"""

from __future__ import annotations

import os
from typing import Any

from rairl.io import DataError, read_jsonl, require

LIKELIHOOD_AGGREGATES = ("mean", "min")


def read_samples(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of a `rairl sample` file and their line numbers; a missing/mistyped field or a repeated (id, sample)
    raises `DataError` naming the file, line and field."""
    rows, lines, seen = [], [], {}
    for line, row in read_jsonl(path):
        key = (require(row, "id", path, line, (str, int)), require(row, "sample", path, line, int))
        require(row, "prompt", path, line, str)
        if not isinstance(row.get("response"), str):
            raise DataError(path, line, "response", f"expected str, got {type(row.get('response')).__name__}")
        require(row, "correct", path, line, bool)
        if row.get("answer") is not None and not isinstance(row["answer"], str):
            raise DataError(path, line, "answer", f"expected str or null, got {type(row['answer']).__name__}")
        if key in seen:
            raise DataError(path, line, "sample", f"(id, sample) = {key} repeats line {seen[key]}")
        seen[key] = line
        rows.append(row)
        lines.append(line)
    if not rows:
        raise DataError(path, None, None, "no samples (the file is empty)")
    return rows, lines


def default_ks(n_min: int) -> list[int]:
    """1, 2, 4, ... up to the smallest N, and that N."""
    return sorted({2**i for i in range(n_min.bit_length()) if 2**i <= n_min} | {n_min})
