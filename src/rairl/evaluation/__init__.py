"""Evaluation: pass@k, success@1|N and baselines with bootstrap intervals; ProcessBench localisation metrics."""

from rairl.evaluation.metrics import (
    bootstrap_ci,
    majority_vote,
    oracle_at_n,
    paired_diff,
    pass_at_k,
    random_pick,
    success_at_1_of_n,
    summarize,
)
from rairl.evaluation.processbench import (
    LabelledTrace,
    f1,
    processbench_metrics,
    read_processbench,
    write_processbench,
)

__all__ = [
    "LabelledTrace",
    "bootstrap_ci",
    "f1",
    "majority_vote",
    "oracle_at_n",
    "paired_diff",
    "pass_at_k",
    "processbench_metrics",
    "random_pick",
    "read_processbench",
    "success_at_1_of_n",
    "summarize",
    "write_processbench",
]
