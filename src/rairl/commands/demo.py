"""`rairl demo`: the paper's three claims on the embedded default (`arith`), with seeds, CIs and an OOD split.

1. A base policy: a short warm start on a fraction of the demonstrations (the stand-in for a pretrained LLM).
2. For each seed, from that base and with the same number of policy steps: SFT, R-AIRL (dense and outcome
   granularity) and GRPO with the verifier (the reference that uses answer labels).
3. Every policy on the in-distribution test split and the OOD split (more steps than trained on).
4. Best-of-N reranking of the SFT and R-AIRL policies' samples by the learned reward (R-AIRL dense's discriminator),
   against random pick, majority vote and the base policy's likelihood.
5. First-error localisation on injected errors and on the policy's natural errors (thresholds calibrated on the
   validation split, never on test).
6. Transfer: the reward trained on 2-4-step problems reranks and localises on the OOD split (5-6 steps).
Seeds are pooled (questions × seeds) for every figure; `results.json`, `report.html` and a claims table follow.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rairl.commands import localize, rerank
from rairl.demo_results import (
    RERANK_PICKS,
    claims,
    compare_to_sft,
    format_claims,
    pool_eval,
    pool_localize,
    pool_rerank,
)
from rairl.inference.sampling import load_for_inference, sample_rows
from rairl.io import write_json, write_jsonl
from rairl.models import ModelArgs
from rairl.report import html
from rairl.tasks import TaskArgs, get_task
from rairl.trainers import airl, grpo, sft
from rairl.trainers.common import set_threads

logger = logging.getLogger(__name__)

METHODS = ("base", "sft", "airl_dense", "airl_outcome", "grpo_verifier")
GENERATED = ("arith", "countdown_gen")  # tasks with seeded train/validation/test/ood splits


@dataclass
class Config:
    output_dir: str = field(default="runs/demo", metadata={"help": "run folder"})
    task: str = field(default="arith", metadata={"help": "a generated task: arith or countdown_gen"})
    seeds: str = field(default="0,1,2", metadata={"help": "comma-separated seeds"})
    fast: bool = field(default=False, metadata={"help": "a ~2-minute smoke run: same outputs, weaker figures"})
    base_steps: int = field(default=1000, metadata={"help": "warm-start SFT steps of the base policy"})
    base_fraction: float = field(default=0.2, metadata={"help": "fraction of the demonstrations the base sees"})
    policy_steps: int = field(default=30, metadata={"help": "policy optimizer steps of every method"})
    sft_learning_rate: float = field(default=5e-4, metadata={"help": "continued SFT learning rate"})
    rl_learning_rate: float = field(default=5e-5, metadata={"help": "R-AIRL and GRPO policy learning rate"})
    num_generations: int = field(default=8, metadata={"help": "GRPO/R-AIRL group size"})
    prompts_per_step: int = field(default=4, metadata={"help": "prompts per policy step (batch = prompts × G)"})
    disc_warmup_steps: int = field(default=20, metadata={"help": "R-AIRL discriminator warm-up steps"})
    n_eval: int = field(default=128, metadata={"help": "questions per evaluation split"})
    n_samples: int = field(default=8, metadata={"help": "N: samples per question for pass@k and reranking"})
    hidden_size: int = field(default=128, metadata={"help": "policy width"})
    num_layers: int = field(default=4, metadata={"help": "policy layers"})
    threads: int = field(default=0, metadata={"help": "torch threads (0: every usable core)"})

    def __post_init__(self) -> None:
        if self.fast:
            # Same pipeline and outputs, about two minutes on 2 cores; figures are weak by design.
            self.seeds = "0,1" if self.seeds == "0,1,2" else self.seeds
            self.base_steps, self.policy_steps, self.disc_warmup_steps = 60, 3, 2
            self.n_eval, self.n_samples, self.num_generations, self.prompts_per_step = 16, 4, 4, 4
            self.hidden_size, self.num_layers = 64, 2
        if self.task not in GENERATED:
            raise ValueError(f"--task must be a generated task ({', '.join(GENERATED)}), got {self.task!r}")
        if not self.seed_list:
            raise ValueError(f"--seeds must list at least one seed, got {self.seeds!r}")
        if not 0 < self.base_fraction <= 1:
            raise ValueError(f"base_fraction must be in (0, 1], got {self.base_fraction}")

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in self.seeds.split(",") if s.strip()]


def task_args(config: Config, n_train: int | None = None) -> TaskArgs:
    return TaskArgs(task=config.task, n_eval=config.n_eval, **({"n_train": n_train} if n_train else {}))


class Timer:
    """Wall time per phase, for `results.json`."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        logger.info("demo: %s", name)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.phases[name] = round(time.perf_counter() - start, 1)
        return out


def train_base(config: Config, out: Path, timer: Timer) -> Path:
    n_train = max(1, int(TaskArgs().n_train * config.base_fraction))
    base = sft.Config(
        **dataclasses.asdict(task_args(config, n_train)),
        model="tiny",
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        output_dir=str(out / "base"),
        max_steps=config.base_steps,
        report_to="none",
        save_steps=10**9,
        threads=config.threads,
        seed=0,
    )
    timer.run("base", sft.run, base)
    return out / "base"


def train_methods(config: Config, base: Path, seed: int, out: Path, timer: Timer) -> dict[str, Path]:
    """SFT, R-AIRL dense/outcome and verifier GRPO from `base`, each for `policy_steps` policy updates."""
    common = dict(
        **dataclasses.asdict(task_args(config)),
        model=str(base),
        max_steps=config.policy_steps,
        seed=seed,
        report_to="none",
        save_steps=10**9,
        threads=config.threads,
        logging_steps=5,
    )
    rl = dict(
        num_generations=config.num_generations,
        per_device_train_batch_size=config.prompts_per_step * config.num_generations,
        learning_rate=config.rl_learning_rate,
        warmup_steps=0.0,
        lr_scheduler_type="constant",
    )
    paths = {
        "sft": out / "sft",
        "airl_dense": out / "airl_dense",
        "airl_outcome": out / "airl_outcome",
        "grpo_verifier": out / "grpo_verifier",
    }
    timer.run(
        f"seed{seed}/sft",
        sft.run,
        sft.Config(**common, output_dir=str(paths["sft"]), learning_rate=config.sft_learning_rate),
    )
    for granularity in ("dense", "outcome"):
        timer.run(
            f"seed{seed}/airl_{granularity}",
            airl.run,
            airl.Config(
                **common,
                **rl,
                output_dir=str(paths[f"airl_{granularity}"]),
                granularity=granularity,
                disc_warmup_steps=config.disc_warmup_steps,
            ),
        )
    timer.run(
        f"seed{seed}/grpo_verifier", grpo.run, grpo.Config(**common, **rl, output_dir=str(paths["grpo_verifier"]))
    )
    return paths


def evaluate(config: Config, policies: dict[str, Path], out: Path) -> dict[str, dict[str, list[dict]]]:
    """Greedy answers and N samples of every policy on test and OOD; rows are also written as JSONL."""
    task = get_task(task_args(config))
    rows: dict[str, dict[str, list[dict]]] = {}
    for method, path in policies.items():
        model, tokenizer = load_for_inference(ModelArgs(model=str(path)))
        rows[method] = {}
        for split in ("test", "ood"):
            examples = task.examples(split)
            greedy = sample_rows(model, tokenizer, task, examples, greedy=True, batch_size=64, progress=False)
            sampled = sample_rows(model, tokenizer, task, examples, n=config.n_samples, batch_size=128, progress=False)
            write_jsonl(out / f"{method}_{split}_greedy.jsonl", greedy)
            write_jsonl(out / f"{method}_{split}_samples.jsonl", sampled)
            rows[method][split] = {"greedy": greedy, "samples": sampled}
    return rows


def use_reward(config: Config, reward_model: Path, base: Path, out: Path, seed: int) -> dict[str, Any]:
    """Rerank, localise and transfer with one learned reward; returns the per-run metrics."""
    task_kwargs = dataclasses.asdict(task_args(config))
    reports: dict[str, Any] = {"rerank": {}, "localize": {}}
    for policy in ("sft", "airl_dense"):
        for split in ("test", "ood"):
            name = f"{policy}_{split}"
            reports["rerank"][name] = rerank.run(
                rerank.Config(
                    **task_kwargs,
                    reward_model=str(reward_model),
                    policy=str(base),
                    seed=seed,
                    samples=str(out / "eval" / f"{policy}_{split}_samples.jsonl"),
                    output_dir=str(out / f"rerank_{name}"),
                )
            )
    sources = {
        "injected": dict(source="injected", split="test"),
        "injected_ood": dict(source="injected", split="ood"),
        "natural": dict(source="natural", samples=str(out / "eval" / "sft_test_samples.jsonl")),
        "natural_ood": dict(source="natural", samples=str(out / "eval" / "sft_ood_samples.jsonl")),
    }
    for name, source in sources.items():
        reports["localize"][name] = localize.run(
            localize.Config(
                **task_kwargs,
                **source,
                reward_model=str(reward_model),
                policy=str(base),
                seed=seed,
                calibrate=True,
                val_source="injected",
                val_split="validation",
                val_limit=config.n_eval,
                limit=config.n_eval if source["source"] == "injected" else 0,
                output_dir=str(out / f"localize_{name}"),
            )
        )
    return reports


def run(config: Config) -> dict[str, Any]:
    set_threads(config.threads)
    out = Path(config.output_dir)
    timer = Timer()
    start = time.perf_counter()
    base = train_base(config, out, timer)
    torch.manual_seed(0)
    base_rows = timer.run("base/evaluate", evaluate, config, {"base": base}, out / "base" / "eval")
    per_seed: list[dict[str, Any]] = []
    for i, seed in enumerate(config.seed_list):
        seed_dir = out / f"seed{seed}"
        policies = train_methods(config, base, seed, seed_dir, timer)
        torch.manual_seed(seed)
        rows = timer.run(f"seed{seed}/evaluate", evaluate, config, policies, seed_dir / "eval")
        if i == 0:  # one base policy for every seed: counted once
            rows.update(base_rows)
        uses = timer.run(
            f"seed{seed}/rerank_localize",
            use_reward,
            config,
            policies["airl_dense"] / "discriminator",
            base,
            seed_dir,
            seed,
        )
        per_seed.append({"seed": seed, "dir": str(seed_dir), "rows": rows, **uses})

    results = {
        "seeds": config.seed_list,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "phases_s": timer.phases,
        "config": dataclasses.asdict(config),
        "training": pool_eval(per_seed, METHODS, config.n_samples),
        "comparisons": compare_to_sft(per_seed, ("airl_dense", "airl_outcome", "grpo_verifier"), config.n_samples),
        "rerank": pool_rerank(per_seed, "sft_test", config.n_samples, RERANK_PICKS),
        "localize": pool_localize(per_seed, ("injected", "natural")),
        "transfer": {
            "rerank_airl_policy": pool_rerank(per_seed, "airl_dense_test", config.n_samples, RERANK_PICKS),
            "rerank_ood": pool_rerank(per_seed, "sft_ood", config.n_samples, RERANK_PICKS),
            "localize_ood": pool_localize(per_seed, ("injected_ood", "natural_ood")),
        },
    }
    results["claims"] = claims(results)
    write_json(out / "results.json", results)
    print(format_claims(results))
    html.run(html.Config(run_dir=str(out), reward_model=str(per_seed[0]["dir"]) + "/airl_dense/discriminator"))
    logger.info("demo finished in %.0f s; results in %s", results["wall_time_s"], out / "results.json")
    return results
