"""`rairl eval`: greedy accuracy and pass@k of a policy on a task's evaluation splits, with 95% intervals.

For each question: greedy accuracy is the verdict of the argmax response; pass@k is the unbiased estimate
`1 - C(n-c, k) / C(n, k)` from `n` samples at the given temperature of which `c` are correct (pass@1 is
then `c / n`). Each is averaged over questions with a bootstrap interval that resamples questions.
Writes `metrics.json` and the samples of every split (`<split>_greedy.jsonl`, `<split>_samples.jsonl`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import set_seed

from rairl.config import config_dict
from rairl.evaluation.metrics import parse_ks, pass_at_k, summarize
from rairl.inference.sampling import SamplingArgs, load_for_inference, sample_rows, select_examples
from rairl.io import write_json, write_jsonl
from rairl.models import ModelArgs
from rairl.tasks import TaskArgs, get_task

logger = logging.getLogger(__name__)


@dataclass
class Config(TaskArgs, ModelArgs, SamplingArgs):
    splits: str = field(default="", metadata={"help": "comma-separated splits (empty: the task's eval splits)"})
    k: str = field(default="1,4,8", metadata={"help": "comma-separated k values for pass@k (each <= n)"})
    output_dir: str = field(default="runs/eval", metadata={"help": "folder for metrics.json and the samples"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_sampling()
        ks = parse_ks(self.k)
        if ks[0] < 1 or ks[-1] > self.n:
            raise ValueError(f"every k must lie in 1..n={self.n}, got k={self.k!r}; raise --n or drop the larger k")


def split_metrics(greedy_rows: list[dict], sampled_rows: list[dict], n: int, ks: list[int], seed: int = 0) -> dict:
    """`{"greedy": summary, "pass@k": summary, ...}` from one greedy row and `n` sample rows per question."""
    correct: dict[str, list[bool]] = {}
    for row in sampled_rows:
        correct.setdefault(row["id"], []).append(bool(row["correct"]))
    if any(len(v) != n for v in correct.values()):
        raise ValueError(f"expected {n} samples per question, got counts {sorted({len(v) for v in correct.values()})}")
    metrics = {"greedy": summarize([float(r["correct"]) for r in greedy_rows], seed=seed)}
    for k in ks:
        metrics[f"pass@{k}"] = summarize([pass_at_k(n, sum(v), k) for v in correct.values()], seed=seed)
    return metrics


def format_table(metrics: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Rows `split  metric  mean  [lo, hi]  n` for printing."""
    lines = [f"{'split':<12} {'metric':<10} {'mean':>7}  {'95% CI':<17} {'n':>5}"]
    for split, by_metric in metrics.items():
        for name, s in by_metric.items():
            if s["mean"] is None:
                lines.append(f"{split:<12} {name:<10} {'-':>7}  {'-':<17} {s['n']:>5}")
            else:
                ci = f"[{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]"
                lines.append(f"{split:<12} {name:<10} {s['mean']:>7.3f}  {ci:<17} {s['n']:>5}")
    return "\n".join(lines)


def run(config: Config) -> dict[str, Any]:
    set_seed(config.seed)
    task = get_task(config)
    splits = [s.strip() for s in config.splits.split(",") if s.strip()] or list(task.eval_splits)
    unknown = [s for s in splits if s not in task.splits]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown} for task {config.task!r}; known splits: {list(task.splits)}")
    ks = parse_ks(config.k)
    model, tokenizer = load_for_inference(config, seed=config.seed)
    out_dir = Path(config.output_dir)
    options = dict(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for split in splits:
        examples = select_examples(task, split, config.limit)
        logger.info("eval %s: %d questions, greedy + %d samples each", split, len(examples), config.n)
        greedy = sample_rows(model, tokenizer, task, examples, n=1, greedy=True, **options)
        sampled = sample_rows(
            model, tokenizer, task, examples, n=config.n, temperature=config.temperature, top_p=config.top_p, **options
        )
        write_jsonl(out_dir / f"{split}_greedy.jsonl", greedy)
        write_jsonl(out_dir / f"{split}_samples.jsonl", sampled)
        results[split] = split_metrics(greedy, sampled, config.n, ks, seed=config.seed)

    report = {"model": config.model, "task": config.task, "splits": results, "config": config_dict(config)}
    write_json(out_dir / "metrics.json", report)
    print(format_table(results))
    logger.info("wrote %s", out_dir / "metrics.json")
    return report
