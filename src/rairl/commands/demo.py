"""`rairl demo`: the paper's three claims on the embedded default (`arith`), with seeds, CIs and an OOD split.

1. A base policy: a warm start on a fraction of the demonstrations (the stand-in for a pretrained LLM), its
   cosine learning-rate schedule stopped before it anneals (`base_schedule_cycles`): a policy annealed to a learning
   rate of zero is one that RL from a verifier makes worse, not better (`benchmarks/grpo_sweep.py`).
2. For each seed, from that base and with the same number of policy updates: continued SFT, R-AIRL (dense and
   outcome granularity) and GRPO with the verifier (the reference that uses answer labels).
3. Every policy on the in-distribution test split and the OOD split (more steps than trained on).
4. Best-of-N reranking of the SFT and R-AIRL policies' samples by the learned reward (R-AIRL dense's discriminator),
   against random pick, majority vote and the base policy's likelihood.
5. First-error localisation on injected errors and on the policy's natural errors (thresholds calibrated on the
   validation split, never on test); Hit@1, Hit@3 and MAP beside F1.
6. Transfer: the reward trained on 2-4-step problems reranks and localises on the OOD split (5-6 steps).
Seeds are pooled (questions × seeds) for every figure; `results.json`, `report.html` and a claims table follow.
Steps 2-6 run as jobs on `workers` single-thread processes (`rairl.jobs`); a job whose outputs exist is read, not
rerun, so a demo stopped at any point resumes where it was.
"""

from __future__ import annotations

import dataclasses
import json
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
    compare,
    format_claims,
    format_comparisons,
    pool_eval,
    pool_localize,
    pool_rerank,
)
from rairl.inference.sampling import load_for_inference, sample_rows
from rairl.io import write_json, write_jsonl
from rairl.jobs import Job, run_jobs, usable_cores
from rairl.models import ModelArgs
from rairl.report import html
from rairl.tasks import TaskArgs, get_task
from rairl.trainers import airl, grpo, sft
from rairl.trainers.common import LOG_FILE, finished, set_threads
from rairl.trainers.monitor import log_summary

logger = logging.getLogger(__name__)

METHODS = ("base", "sft", "airl_dense", "airl_outcome", "grpo_verifier")
TRAINED = METHODS[1:]
RL = ("airl_dense", "airl_outcome", "grpo_verifier")
GENERATED = ("arith", "countdown_gen")  # tasks with seeded train/validation/test/ood splits


@dataclass
class Config:
    output_dir: str = field(default="runs/demo", metadata={"help": "run folder"})
    task: str = field(default="arith", metadata={"help": "a generated task: arith or countdown_gen"})
    seeds: str = field(default="0,1,2", metadata={"help": "comma-separated seeds"})
    fast: bool = field(default=False, metadata={"help": "a ~2-minute smoke run: same outputs, weaker figures"})
    base_steps: int = field(default=1000, metadata={"help": "warm-start SFT steps of the base policy"})
    base_fraction: float = field(default=0.2, metadata={"help": "fraction of the demonstrations the base sees"})
    base_schedule_cycles: float = field(
        default=0.3785,
        metadata={
            "help": "cosine cycles of the base's learning rate (0.5: annealed to 0; 0.3785: ends at 14%% of its "
            "peak, as step 1000 of a 1300-step run)"
        },
    )
    policy_steps: int = field(default=30, metadata={"help": "policy optimizer steps of every method"})
    sft_learning_rate: float = field(default=5e-4, metadata={"help": "continued SFT learning rate"})
    rl_learning_rate: float = field(
        default=5e-5, metadata={"help": "R-AIRL and GRPO policy learning rate (chosen on validation: grpo_sweep.py)"}
    )
    num_generations: int = field(default=8, metadata={"help": "GRPO/R-AIRL group size"})
    prompts_per_step: int = field(default=8, metadata={"help": "prompts per policy step (batch = prompts × G = 64)"})
    disc_warmup_steps: int = field(default=20, metadata={"help": "R-AIRL discriminator warm-up steps"})
    n_eval: int = field(default=128, metadata={"help": "questions per evaluation split"})
    n_samples: int = field(default=8, metadata={"help": "N: samples per question for pass@k and reranking"})
    hidden_size: int = field(default=128, metadata={"help": "policy width"})
    num_layers: int = field(default=4, metadata={"help": "policy layers"})
    threads: int = field(default=0, metadata={"help": "torch threads of the base's training (0: every usable core)"})
    workers: int = field(default=0, metadata={"help": "processes for the seeds' jobs, one thread each (0: one a core)"})

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
        if not 0 < self.base_schedule_cycles <= 0.5:
            raise ValueError(
                f"base_schedule_cycles must be in (0, 0.5] (0.5 anneals to 0), got {self.base_schedule_cycles}"
            )

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in self.seeds.split(",") if s.strip()]


def task_args(config: Config, n_train: int | None = None) -> TaskArgs:
    return TaskArgs(task=config.task, n_eval=config.n_eval, **({"n_train": n_train} if n_train else {}))


def train_base(config: Config, out: Path) -> float:
    """The base policy in `out/base` (in this process, every thread); returns its training seconds (0 if found)."""
    if finished(out / "base"):
        return 0.0
    n_train = max(1, int(TaskArgs().n_train * config.base_fraction))
    base = sft.Config(
        **dataclasses.asdict(task_args(config, n_train)),
        model="tiny",
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        output_dir=str(out / "base"),
        max_steps=config.base_steps,
        warmup_steps=0.065 if config.base_steps >= 100 else 0.05,
        lr_scheduler_kwargs={"num_cycles": config.base_schedule_cycles},
        report_to="none",
        save_steps=10**9,
        threads=config.threads,
        seed=0,
    )
    return sft.run(base)["wall_time_s"]


def train_method(config: Config, base: str, seed: int, method: str, run: str) -> str:
    """One policy from `base` (a job): continued SFT, R-AIRL dense/outcome or verifier GRPO, `policy_steps`
    updates each; read, not rerun, when `run` holds a finished one."""
    if finished(run):
        return run
    common = dict(
        **dataclasses.asdict(task_args(config)),
        model=base,
        max_steps=config.policy_steps,
        seed=seed,
        report_to="none",
        save_steps=10**9,
        threads=1,
        logging_steps=1,
        output_dir=run,
    )
    rl = dict(
        num_generations=config.num_generations,
        per_device_train_batch_size=config.prompts_per_step * config.num_generations,
        learning_rate=config.rl_learning_rate,
        warmup_steps=0.0,
        lr_scheduler_type="constant",
    )
    if method == "sft":
        sft.run(sft.Config(**common, learning_rate=config.sft_learning_rate))
    elif method == "grpo_verifier":
        grpo.run(grpo.Config(**common, **rl))
    else:
        granularity = method.removeprefix("airl_")
        airl.run(airl.Config(**common, **rl, granularity=granularity, disc_warmup_steps=config.disc_warmup_steps))
    return run


def evaluate(config: Config, policies: dict[str, str], out: str, seed: int) -> dict[str, dict[str, list[dict]]]:
    """Greedy answers and N samples of every policy on test and OOD (a job), also written as JSONL; files already
    there are read."""
    from rairl.io import read_jsonl

    task = get_task(task_args(config))
    torch.manual_seed(seed)
    rows: dict[str, dict[str, list[dict]]] = {}
    for method, path in policies.items():
        rows[method] = {}
        for split in ("test", "ood"):
            files = {kind: Path(out, f"{method}_{split}_{kind}.jsonl") for kind in ("greedy", "samples")}
            if all(f.is_file() for f in files.values()):
                rows[method][split] = {kind: [row for _, row in read_jsonl(f)] for kind, f in files.items()}
                continue
            model, tokenizer = load_for_inference(ModelArgs(model=path))
            examples = task.examples(split)
            greedy = sample_rows(model, tokenizer, task, examples, greedy=True, batch_size=64, progress=False)
            sampled = sample_rows(model, tokenizer, task, examples, n=config.n_samples, batch_size=128, progress=False)
            write_jsonl(files["samples"], sampled)
            write_jsonl(files["greedy"], greedy)
            rows[method][split] = {"greedy": greedy, "samples": sampled}
    return rows


def use_reward(config: Config, reward_model: str, base: str, out: str, seed: int) -> dict[str, Any]:
    """Rerank, localise and transfer with one learned reward (a job); returns the per-run metrics. A command whose
    metrics.json exists is read, not rerun."""
    out = Path(out)
    task_kwargs = dataclasses.asdict(task_args(config))
    reports: dict[str, Any] = {"rerank": {}, "localize": {}}
    for policy in ("sft", "airl_dense"):
        for split in ("test", "ood"):
            name = f"{policy}_{split}"
            reports["rerank"][name] = read_or_run(
                rerank.run,
                rerank.Config(
                    **task_kwargs,
                    reward_model=reward_model,
                    policy=base,
                    seed=seed,
                    samples=str(out / "eval" / f"{policy}_{split}_samples.jsonl"),
                    output_dir=str(out / f"rerank_{name}"),
                ),
            )
    sources = {
        "injected": dict(source="injected", split="test"),
        "injected_ood": dict(source="injected", split="ood"),
        "natural": dict(source="natural", samples=str(out / "eval" / "sft_test_samples.jsonl")),
        "natural_ood": dict(source="natural", samples=str(out / "eval" / "sft_ood_samples.jsonl")),
    }
    for name, source in sources.items():
        reports["localize"][name] = read_or_run(
            localize.run,
            localize.Config(
                **task_kwargs,
                **source,
                reward_model=reward_model,
                policy=base,
                seed=seed,
                calibrate=True,
                val_source="injected",
                val_split="validation",
                val_limit=config.n_eval,
                limit=config.n_eval if source["source"] == "injected" else 0,
                output_dir=str(out / f"localize_{name}"),
            ),
        )
    return reports


def read_or_run(run_command, command_config) -> dict[str, Any]:
    """A command's metrics.json when it already wrote one, else its `run`."""
    metrics = Path(command_config.output_dir, "metrics.json")
    return json.loads(metrics.read_text()) if metrics.is_file() else run_command(command_config)


def training_logs(out: Path, seeds: list[int]) -> dict[str, Any]:
    """Per RL run: its verifier-correctness curve, the learned reward's correlation with it and the discriminator's
    accuracy (first and last thirds, slope per 100 steps), and its grad-norm (`log_summary`)."""
    from rairl.io import read_jsonl

    return {
        f"seed{seed}/{m}": log_summary([row for _, row in read_jsonl(out / f"seed{seed}" / m / LOG_FILE)])
        for seed in seeds
        for m in RL
    }


def jobs(config: Config, out: Path) -> list[Job]:
    """Every seed's trainings, then its evaluation, then its reward uses; the base's evaluation beside them."""
    base = str(out / "base")
    base_eval = dict(config=config, policies={"base": base}, out=str(out / "base" / "eval"), seed=0)
    out_jobs = [Job("base/evaluate", evaluate, base_eval, log=out / "base" / "eval" / "job.log")]
    for seed in config.seed_list:
        seed_dir = out / f"seed{seed}"
        trained = tuple(f"seed{seed}/{m}" for m in TRAINED)
        for name, method in zip(trained, TRAINED):
            run = seed_dir / method
            kwargs = dict(config=config, base=base, seed=seed, method=method, run=str(run))
            out_jobs.append(Job(name, train_method, kwargs, log=run / "job.log"))
        policies = {m: str(seed_dir / m) for m in TRAINED}
        kwargs = dict(config=config, policies=policies, out=str(seed_dir / "eval"), seed=seed)
        out_jobs.append(Job(f"seed{seed}/evaluate", evaluate, kwargs, after=trained, log=seed_dir / "eval" / "job.log"))
        disc = str(seed_dir / "airl_dense" / "discriminator")
        kwargs = dict(config=config, reward_model=disc, base=base, out=str(seed_dir), seed=seed)
        after = (f"seed{seed}/evaluate",)
        out_jobs.append(Job(f"seed{seed}/rerank_localize", use_reward, kwargs, after=after, log=seed_dir / "uses.log"))
    return out_jobs


def run(config: Config) -> dict[str, Any]:
    set_threads(config.threads)
    out = Path(config.output_dir)
    start = time.perf_counter()
    base_s = train_base(config, out)
    done, jobs_s = run_jobs(jobs(config, out), config.workers or usable_cores(), desc="demo")
    per_seed: list[dict[str, Any]] = []
    for i, seed in enumerate(config.seed_list):
        rows = done[f"seed{seed}/evaluate"]
        if i == 0:  # one base policy for every seed: counted once
            rows = {**rows, **done["base/evaluate"]}
        per_seed.append(
            {"seed": seed, "dir": str(out / f"seed{seed}"), "rows": rows, **done[f"seed{seed}/rerank_localize"]}
        )

    results = {
        "seeds": config.seed_list,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "base_training_s": round(base_s, 1),
        "jobs_s": {name: round(s, 1) for name, s in jobs_s.items()},  # each job's own time (they overlap)
        "config": dataclasses.asdict(config),
        "training": pool_eval(per_seed, METHODS, config.n_samples),
        "comparisons": {
            **compare(per_seed, TRAINED, "base"),
            **compare(per_seed, RL, "sft"),
            **compare(per_seed, ("airl_dense", "airl_outcome"), "grpo_verifier"),
        },
        "training_logs": training_logs(out, config.seed_list),
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
    print(format_comparisons(results))
    html.run(
        html.Config(
            run_dir=str(out), reward_model=str(out / f"seed{config.seed_list[0]}" / "airl_dense" / "discriminator")
        )
    )
    logger.info("demo finished in %.0f s; results in %s", results["wall_time_s"], out / "results.json")
    return results
