"""`rairl rerank`: best-of-N reranking of `rairl sample` output by the learned reward (library:
`rairl.inference.rerank`, `rairl.evaluation.selection`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rairl.config import config_dict
from rairl.evaluation.metrics import parse_ks
from rairl.evaluation.selection import group_by_question, normalise_answer, picked_by, rerank_metrics
from rairl.inference.rerank import LIKELIHOOD_AGGREGATES, default_ks, read_samples
from rairl.inference.scoring import RewardArgs, load_reward_model, resolve_device, score_rows, step_reduce_of
from rairl.io import write_json, write_jsonl
from rairl.tasks import TaskArgs, get_task

logger = logging.getLogger(__name__)


def format_table(metrics: dict[str, Any]) -> str:
    def cell(s: dict[str, Any], signed: bool = False) -> str:
        if s["mean"] is None:
            return f"{'-':>7} {'':<17}"
        sign = "+" if signed else ""
        return f"{s['mean']:{sign}7.3f} [{s['ci95'][0]:{sign}.3f}, {s['ci95'][1]:{sign}.3f}]"

    lines = [f"{'method':<22} {'mean':>7} {'95% CI':<17}  {'gain vs pass@1':<26} {'n':>5}"]
    for name, s in metrics["pass@k"].items():
        lines.append(f"{name:<22} {cell(s)}  {'':<26} {s['n']:>5}")
    for name, s in metrics["select"].items():
        lines.append(f"{name:<22} {cell(s)}  {cell(metrics['gain'][name], signed=True):<26} {s['n']:>5}")
    return "\n".join(lines)


@dataclass
class Config(TaskArgs, RewardArgs):
    samples: str = field(default="", metadata={"help": "samples JSONL from `rairl sample` (N per question)"})
    policy: str | None = field(
        default=None, metadata={"help": "base policy directory for the likelihood baseline (omit to skip it)"}
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


def run(config: Config) -> dict[str, Any]:
    task = get_task(config)
    rows, lines = read_samples(config.samples)
    groups = group_by_question(rows)
    n_min = min(len(idx) for idx in groups.values())
    ks = parse_ks(config.k) if config.k else default_ks(n_min)
    if ks[0] < 1 or ks[-1] > n_min:
        raise ValueError(f"every k must lie in 1..{n_min} (the fewest samples of a question), got k={config.k!r}")
    prompts, responses = [r["prompt"] for r in rows], [r["response"] for r in rows]

    reward_model = load_reward_model(config, task)
    rm = score_rows(
        reward_model,
        prompts,
        responses,
        lines,
        config.samples,
        aggregates=config.aggregate_names,
        gamma=config.gamma,
        step_reduce=step_reduce_of(config, reward_model),
    )
    scores = {f"reward/{name}": np.asarray(v) for name, v in rm.traces.items()}
    if config.policy:
        from rairl.inference.likelihood import LikelihoodScorer

        scorer = LikelihoodScorer.from_pretrained(
            config.policy,
            device=resolve_device(config.device),
            step_spans=task.step_spans,
            batch_size=config.batch_size,
        )
        ll = score_rows(scorer, prompts, responses, lines, config.samples, aggregates=LIKELIHOOD_AGGREGATES)
        scores.update({f"likelihood/{name}": np.asarray(v) for name, v in ll.traces.items()})
    else:
        logger.info("no --policy: the base-policy likelihood baseline is skipped")

    correct = np.array([r["correct"] for r in rows], dtype=bool)
    answers = [normalise_answer(r.get("answer")) for r in rows]
    metrics = rerank_metrics(groups, correct, answers, scores, ks, seed=config.seed)
    report = {
        "n_questions": len(groups),
        "samples_per_question": {"min": n_min, "max": max(len(idx) for idx in groups.values())},
        **metrics,
        "config": config_dict(config),
    }
    out = Path(config.output_dir)
    picks = picked_by(groups, scores, len(rows))
    scored = [
        {
            **row,
            "scores": {name: float(v[i]) for name, v in scores.items()},
            "step_scores": rm.steps[i],
            "picked_by": picks[i],
        }
        for i, row in enumerate(rows)
    ]
    write_jsonl(out / "scored.jsonl", scored)
    write_json(out / "metrics.json", report)
    print(format_table(metrics))
    logger.info(
        "reranked %d questions (N = %d..%d); wrote %s",
        len(groups),
        n_min,
        report["samples_per_question"]["max"],
        out / "metrics.json",
    )
    return report
