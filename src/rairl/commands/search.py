"""`rairl search`: spend test-time compute with the learned process reward (library: `rairl.inference.search`).

For each question of a split, each method (best_of_n | beam | dvts), each N and each scorer (the learned reward,
and the policy's own likelihood as its twin), search with the policy and keep one answer. Writes `search.jsonl`
(one row per question, method, scorer and N: the chosen trace, its answer and verdict, tokens generated, scorer
calls) and `metrics.json` (accuracy with n and a 95% CI, mean tokens and scorer calls per question; with both scorers,
`beyond_likelihood`: how often the two searches end on the same answer, and their paired accuracy difference).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import set_seed

from rairl.config import config_dict
from rairl.demo.results import format_summary
from rairl.evaluation.metrics import paired_diff, parse_ks, summarize
from rairl.evaluation.selection import normalise_answer
from rairl.inference.likelihood import LikelihoodScorer
from rairl.inference.sampling import load_for_inference, select_examples
from rairl.inference.scoring import RewardArgs, load_reward_model
from rairl.inference.search import METHODS, Searcher, check_budget, check_settings, search_rows
from rairl.io import write_json, write_jsonl
from rairl.models import ModelArgs
from rairl.options import check_number
from rairl.scores import search_score
from rairl.tasks import TaskArgs, get_task

logger = logging.getLogger(__name__)
SCORERS = ("reward", "likelihood")


@dataclass
class Config(TaskArgs, RewardArgs):
    policy: str = field(default="", metadata={"help": "the policy that proposes steps (and the likelihood scorer)"})
    methods: str = field(
        default=",".join(METHODS),
        metadata={"help": "comma-separated: best_of_n (rerank N samples), beam (N/M beams × M), dvts (N/M trees)"},
    )
    scorers: str = field(default=",".join(SCORERS), metadata={"help": "reward (learned) and/or likelihood (policy)"})
    n: str = field(default="4,8,16", metadata={"help": "comma-separated N: candidates per round (the budget)"})
    m: int = field(default=4, metadata={"help": "M: next steps drawn per beam (beam, dvts: M divides N)"})
    step_aggregate: str = field(
        default="min", metadata={"help": "a partial trace's score from its step scores: last | min | mean"}
    )
    split: str = field(default="test", metadata={"help": "the task split searched"})
    limit: int = field(default=0, metadata={"help": "questions (0 = all)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the steps"})
    max_steps: int = field(default=10, metadata={"help": "rounds of search (steps per trace) at most"})
    max_step_tokens: int = field(default=32, metadata={"help": "tokens per step at most"})
    seed: int = field(default=0, metadata={"help": "sampling seed and bootstrap seed"})
    output_dir: str = field(default="runs/search", metadata={"help": "folder for search.jsonl and metrics.json"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.policy:
            raise ValueError("--policy is required: the causal LM that proposes the steps")
        for name, known in (("methods", METHODS), ("scorers", SCORERS)):
            if bad := [x for x in getattr(self, name).split(",") if x not in known]:
                raise ValueError(f"--{name}: unknown {bad}; known: {', '.join(known)}")
        search_score([], self.step_aggregate)  # checks the name
        check_number("--limit", self.limit, integer=True, low=0, rule="must be >= 0 (0: every question)")
        check_settings(self.temperature, self.max_steps, self.max_step_tokens)
        for method in self.method_list:
            for n in parse_ks(self.n):
                check_budget(method, n, self.m)

    @property
    def method_list(self) -> list[str]:
        return [x for x in self.methods.split(",") if x]


def run(config: Config) -> dict[str, Any]:
    set_seed(config.seed)
    task = get_task(config)
    examples = select_examples(task, config.split, config.limit)
    model, tokenizer = load_for_inference(ModelArgs(model=config.policy), seed=config.seed)
    scorers = {}
    if "reward" in config.scorers:
        scorers["reward"] = load_reward_model(config, task)
    if "likelihood" in config.scorers:
        scorers["likelihood"] = LikelihoodScorer(
            model, tokenizer, step_spans=task.step_spans, batch_size=config.batch_size
        )
    rows, metrics = [], {}
    for name, scorer in scorers.items():
        searcher = Searcher(model, tokenizer, scorer, task.step_boundary, m=config.m, how=config.step_aggregate,
                            temperature=config.temperature, max_steps=config.max_steps,
                            max_step_tokens=config.max_step_tokens)  # fmt: skip
        for method in config.method_list:
            for n in parse_ks(config.n):
                logger.info("search: %s, N=%d, M=%d, scorer %s, %d questions", method, n, config.m, name, len(examples))
                found = search_rows(searcher, task, examples, method, n, name)
                rows += found
                metrics[f"{method}/{name}/N={n}"] = {
                    "accuracy": summarize([float(r["correct"]) for r in found], seed=config.seed),
                    "tokens_per_question": sum(r["tokens"] for r in found) / len(found),
                    "scorer_calls_per_question": sum(r["scorer_calls"] for r in found) / len(found),
                }
    out = Path(config.output_dir)
    write_jsonl(out / "search.jsonl", rows)
    report = {"split": config.split, "n_questions": len(examples), "results": metrics, "config": config_dict(config)}
    report["beyond_likelihood"] = beyond_likelihood(rows, seed=config.seed)
    write_json(out / "metrics.json", report)
    print(format_table(metrics))
    for key, b in report["beyond_likelihood"].items():
        same, diff = b["same_answer"], b["reward_minus_likelihood"]
        print(f"{key}: the reward- and likelihood-guided searches end on the same answer on {100 * same['mean']:.0f}% "
              f"of {same['n']} questions; accuracy, reward − likelihood {format_summary(diff, True)}")  # fmt: skip
    return report


def beyond_likelihood(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """For each method and N searched with both scorers (DESIGN §2.6): the share of questions where the reward- and the
    likelihood-guided searches end on the same answer, and reward − likelihood accuracy, paired over questions. (The
    two searches generate different traces, so this is what can be compared; the residual of the reward beyond the
    likelihood on one set of candidates is `rairl rerank`'s.)"""
    runs: dict[tuple[str, int], dict[str, dict[str, dict]]] = {}
    for r in rows:
        runs.setdefault((r["method"], r["n"]), {}).setdefault(r["scorer"], {})[r["id"]] = r
    out = {}
    for (method, n), by_scorer in runs.items():
        if set(by_scorer) != set(SCORERS):
            continue
        ids = list(by_scorer["reward"])
        reward, likelihood = (by_scorer[s] for s in SCORERS)
        answers = [(normalise_answer(reward[i]["answer"]), normalise_answer(likelihood[i]["answer"])) for i in ids]
        same = [float(a is not None and a == b) for a, b in answers]  # two unreadable answers are not the same
        diff = paired_diff([float(reward[i]["correct"]) for i in ids], [float(likelihood[i]["correct"]) for i in ids],
                           seed=seed)  # fmt: skip
        out[f"{method}/N={n}"] = {"same_answer": summarize(same, seed=seed), "reward_minus_likelihood": diff}
    return out


def format_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'method/scorer/N':<28} {'accuracy [95% CI]':<24} {'n':>5} {'tokens/q':>9} {'scored/q':>9}"]
    for key, m in metrics.items():
        a = m["accuracy"]
        cell = f"{a['mean']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]"
        lines.append(
            f"{key:<28} {cell:<24} {a['n']:>5} {m['tokens_per_question']:>9.1f} {m['scorer_calls_per_question']:>9.1f}"
        )
    return "\n".join(lines)
