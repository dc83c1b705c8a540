"""Best-of-N selection by the learned reward, against the baselines (DESIGN §2.2); the command `rairl rerank`
runs `rerank`.

Input: a `rairl sample` JSONL (N samples per question: id, sample, prompt, response, answer, correct). Each
question's samples are scored by the learned reward (`reward/<agg>`, every aggregation) and, with `--policy`, by the
base policy's token log-probs ℓ_t (`likelihood/<agg>`, mean | min); the selection methods and their figures
(success@1|N, majority, random, oracle@N, pass@k, gains over pass@1) are `rairl.evaluation.selection`'s. With
`--policy`, what the reward adds beyond the likelihood (DESIGN §2.6, `rairl.evaluation.residual`): the reward's
learned part alone (`learned/<agg>`, f_t − ℓ_t), and per reward aggregation against the same likelihood aggregation
the pick agreement, rank correlation and residual (`agreement`, `residual` in the metrics; the residual's models
fitted on `--fit_samples`, validation samples, else cross-fitted over the questions). Writes
`metrics.json` and `scored.jsonl` (every sample with its trace and step scores, the methods that pick it, and the
reward's `tokens`/`token_rewards` as `rairl score` writes them, rounded for display) to `output_dir`. With
`--reference_model` (a PRM trained on step labels, `rairl prm`), the labelled reference is one more scorer
(`reference/<agg>`), read against the same likelihood in `agreement` and `residual` (its gain over the likelihood;
DESIGN §2.7), so the learned reward is read between the two.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rairl.config import config_dict
from rairl.evaluation.metrics import parse_ks
from rairl.evaluation.residual import as_scored, beyond_likelihood, describe, paired_likelihood
from rairl.evaluation.selection import group_by_question, normalise_answer, picked_by, rerank_metrics
from rairl.inference.scoring import (
    DISPLAY_DIGITS,
    RewardArgs,
    load_reference_model,
    load_reward_model,
    resolve_device,
    score_rows,
    token_fields,
)
from rairl.io import DataError, read_jsonl, require, write_json, write_jsonl
from rairl.scores import TraceScores
from rairl.tasks import TaskArgs, get_task

if TYPE_CHECKING:  # annotations only: the models load inside `rerank`
    from rairl.inference.likelihood import LikelihoodScorer
    from rairl.reward_model import RewardModel

logger = logging.getLogger(__name__)

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


@dataclass
class RerankConfig(TaskArgs, RewardArgs):
    """`rairl rerank`'s options: the samples, the reward, the likelihood baseline, k and the output folder."""

    samples: str = field(default="", metadata={"help": "samples JSONL from `rairl sample` (N per question)"})
    policy: str | None = field(
        default=None, metadata={"help": "base policy directory for the likelihood baseline (omit to skip it)"}
    )
    fit_samples: str | None = field(
        default=None,
        metadata={
            "help": "validation samples JSONL (from `rairl sample`) the residual's models are fitted on; default: "
            "cross-fitted over two folds of --samples' questions (needs --policy)"
        },
    )
    reference_model: str | None = field(
        default=None, metadata={"help": "a labelled reference reward (a `rairl prm` folder), scored beside the others"}
    )
    k: str = field(default="", metadata={"help": "comma-separated k for pass@k (default: 1, 2, 4, ... N)"})
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap intervals"})
    output_dir: str = field(default="runs/rerank", metadata={"help": "folder for metrics.json and scored.jsonl"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.samples:
            raise ValueError("--samples is required: the JSONL written by `rairl sample` (N samples per question)")
        if self.k:
            parse_ks(self.k)
        if self.fit_samples and not self.policy:
            raise ValueError("--fit_samples fits the residual beyond the likelihood: it needs --policy as well")


def score_samples(
    config: RerankConfig,
    reward_model: RewardModel,
    likelihood: LikelihoodScorer | None,
    path: str,
    read: tuple[list[dict[str, Any]], list[int]] | None = None,
    reference: RewardModel | None = None,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], TraceScores]:
    """Rows of a samples file (`read`: its rows and line numbers, when already read) and their trace scores:
    `reward/<agg>`, with a likelihood scorer `likelihood/<agg>` and the reward's learned part `learned/<agg>`, with a
    reference `reference/<agg>`; the reward's `TraceScores` too (token and step views)."""
    rows, lines = read or read_samples(path)
    prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]
    names = config.aggregate_names
    parts = score_rows(reward_model.score_parts, prompts, responses, lines, path, aggregates=names)
    rm = parts["value"]
    scores = {f"reward/{name}": np.asarray(v) for name, v in rm.traces.items()}
    if likelihood is not None:
        ll = score_rows(likelihood.score, prompts, responses, lines, path, aggregates=LIKELIHOOD_AGGREGATES)
        scores.update({f"likelihood/{name}": np.asarray(v) for name, v in ll.traces.items()})
        scores.update({f"learned/{name}": np.asarray(v) for name, v in parts["learned"].traces.items()})
    if reference is not None:
        ref = score_rows(reference.score, prompts, responses, lines, path, aggregates=names)
        scores.update({f"reference/{name}": np.asarray(v) for name, v in ref.traces.items()})
    return rows, scores, rm


def beyond_likelihood_figures(
    rows: list[dict[str, Any]], scores: dict[str, np.ndarray], fit: tuple[list[dict], dict] | None
) -> dict[str, dict[str, Any]]:
    """`{"agreement": {reward/<agg>: ...}, "residual": {reward/<agg>: ...}}` (`rairl.evaluation.residual`), each
    reward (and reference) aggregation against its paired likelihood; the residual fitted on `fit` (validation) when
    given."""
    out: dict[str, dict[str, Any]] = {"agreement": {}, "residual": {}}
    for name in [n for n in scores if n.startswith(("reward/", "reference/"))]:
        figures = beyond_likelihood(as_scored(rows, scores, name), as_scored(*fit, name) if fit else None)
        versus = paired_likelihood(name, list(scores))
        out["agreement"][name] = {"versus": versus, **figures["agreement"]}
        out["residual"][name] = {"versus": versus, **figures["residual"], "summary": describe(figures)}
    return out


def rerank(config: RerankConfig) -> dict[str, Any]:
    """Score every sample, pick by each method, write `metrics.json` and `scored.jsonl`; returns the metrics."""
    rows, lines = read_samples(config.samples)  # the k range is checked before any model loads
    groups = group_by_question(rows)
    n_min = min(len(idx) for idx in groups.values())
    ks = parse_ks(config.k) if config.k else default_ks(n_min)
    if ks[0] < 1 or ks[-1] > n_min:
        raise ValueError(f"every k must lie in 1..{n_min} (the fewest samples of a question), got k={config.k!r}")
    task = get_task(config)
    reward_model = load_reward_model(config, task)
    likelihood = None
    if config.policy:
        from rairl.inference.likelihood import LikelihoodScorer

        likelihood = LikelihoodScorer.from_pretrained(
            config.policy,
            device=resolve_device(config.device),
            step_spans=task.step_spans,
            batch_size=config.batch_size,
        )
    else:
        logger.info("no --policy: the base-policy likelihood baseline is skipped")
    reference = load_reference_model(config.reference_model, config, task) if config.reference_model else None
    rows, scores, rm = score_samples(config, reward_model, likelihood, config.samples, (rows, lines), reference)

    correct = np.array([r["correct"] for r in rows], dtype=bool)
    answers = [normalise_answer(r.get("answer")) for r in rows]
    metrics = rerank_metrics(groups, correct, answers, scores, ks, seed=config.seed)
    report = {
        "n_questions": len(groups),
        "samples_per_question": {"min": n_min, "max": max(len(idx) for idx in groups.values())},
        **metrics,
        "config": config_dict(config),
    }
    if likelihood is not None:
        fit = None
        if config.fit_samples:
            fit = score_samples(config, reward_model, likelihood, config.fit_samples, reference=reference)[:2]
        report.update(beyond_likelihood_figures(rows, scores, fit))
        for name, entry in report["residual"].items():
            logger.info("%s: %s", name, entry["summary"])
    out = Path(config.output_dir)
    picks = picked_by(groups, scores, len(rows))
    eos = reward_model.tokenizer.eos_token or ""
    scored = [
        {
            **row,
            "scores": {name: float(v[i]) for name, v in scores.items()},
            "step_scores": rm.steps[i],
            "picked_by": picks[i],
            **token_fields(row["response"], rm, i, eos, DISPLAY_DIGITS),
        }
        for i, row in enumerate(rows)
    ]
    write_jsonl(out / "scored.jsonl", scored)
    write_json(out / "metrics.json", report)
    logger.info(
        "reranked %d questions (N = %d..%d); wrote %s",
        len(groups),
        n_min,
        report["samples_per_question"]["max"],
        out / "metrics.json",
    )
    return report
