"""`rairl demo`: the paper's three claims on the embedded default (`arith`), with seeds, CIs and an OOD split.

1. A base policy: a warm start on a fraction of the demonstrations (the stand-in for a pretrained LLM), its
   cosine learning-rate schedule stopped before it anneals (`base_schedule_cycles`): a policy annealed to a learning
   rate of zero is one that RL from a verifier makes worse, not better (`benchmarks/grpo_sweep.py`).
2. For each seed, from that base, each method at the learning rate chosen on validation
   (`benchmarks/training_curves.py`): continued SFT (`sft_steps`), R-AIRL (dense and outcome granularity) and GRPO
   with the verifier (the reference that uses answer labels), the RL methods `policy_steps` updates each; every run
   keeps its best step on greedy validation accuracy (`validation_points` evaluations), and a run whose best is
   still below the base on validation is flagged.
3. Every policy on the in-distribution test split and the OOD split (more steps than trained on).
4. Best-of-N reranking of the SFT and R-AIRL policies' samples by the learned reward (R-AIRL dense's discriminator),
   against random pick, majority vote and the base policy's likelihood.
5. First-error localisation on injected errors and on the policy's natural errors (thresholds calibrated on the
   validation split, never on test); Hit@1, Hit@3 and MAP beside F1.
6. Transfer: the reward trained on 2-4-step problems reranks and localises on the OOD split (5-6 steps).
Seeds are pooled (questions × seeds) for every figure; `results.json`, `report.html` and a claims table follow.
Every step runs as jobs on `workers` processes of `threads` torch threads each, the base included (`rairl.jobs`,
`rairl.demo.runs`), longest first, so one machine gives one result whatever its core count;
this process only schedules them and pools what they wrote. A job whose outputs exist is read, not rerun, so a
demo stopped at any point resumes where it was.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rairl.demo.config import RL, SAMPLED_OOD, TRAINED, DemoConfig
from rairl.demo.results import (
    RERANK_PICKS,
    claims,
    compare,
    format_claims,
    format_comparisons,
    format_reference,
    format_selection,
    format_training_logs,
    pool_eval,
    pool_localize,
    pool_rerank,
    selection,
)
from rairl.environment import environment
from rairl.io import write_json
from rairl.jobs import Job, run_jobs, usable_cores

logger = logging.getLogger(__name__)
RUNS = "rairl.demo.runs"  # the job functions, imported by the workers only


@dataclass
class Config(DemoConfig):
    """`rairl demo`'s options (`rairl.demo.config.DemoConfig`)."""


def jobs(config: Config, out: Path) -> list[Job]:
    """The demo's job graph, in priority order (the longest first among those ready): the base (nothing else can
    run until it is done); every seed's policies; every policy's evaluation; each seed's reranking and
    localisation."""
    base = str(out / "base")
    todo = [Job("base", f"{RUNS}:train_base", dict(config=config, out=str(out)), log=out / "base.log")]
    by_cost = ("airl_outcome", "airl_dense", "grpo_verifier", "sft")
    for method in by_cost:
        for seed in config.seed_list:
            run = out / f"seed{seed}" / method
            kwargs = dict(config=config, base=base, seed=seed, method=method, run=str(run))
            todo.append(
                Job(f"seed{seed}/{method}", f"{RUNS}:train_method", kwargs, after=("base",), log=run / "job.log")
            )
    kwargs = dict(config=config, policy=base, name="base", out=str(out / "base" / "eval"), seed=0, sample_ood=False)
    todo.append(Job("eval/base", f"{RUNS}:evaluate", kwargs, after=("base",), log=out / "base" / "eval.log"))
    for seed in config.seed_list:
        for method in TRAINED:
            kwargs = dict(config=config, policy=str(out / f"seed{seed}" / method), name=method,
                          out=str(out / f"seed{seed}" / "eval"), seed=seed,
                          sample_ood=method in SAMPLED_OOD)  # fmt: skip
            log = out / f"seed{seed}" / "eval" / f"{method}.log"
            todo.append(Job(f"eval/seed{seed}/{method}", f"{RUNS}:evaluate", kwargs, after=(f"seed{seed}/{method}",),
                            log=log))  # fmt: skip
    for seed in config.seed_list:
        seed_dir = out / f"seed{seed}"
        kwargs = dict(config=config, reward_model=str(seed_dir / "airl_dense" / "discriminator"), base=base,
                      out=str(seed_dir), seed=seed)  # fmt: skip
        samples = (f"eval/seed{seed}/sft", f"eval/seed{seed}/airl_dense")
        for use in ("rerank", "localize"):
            todo.append(Job(f"seed{seed}/{use}", f"{RUNS}:{use}_runs", kwargs, after=samples,
                            log=seed_dir / f"{use}.log"))  # fmt: skip
    return todo


def run(config: Config) -> dict[str, Any]:
    out = Path(config.output_dir)
    start = time.perf_counter()
    workers = config.workers or max(1, usable_cores() // config.threads)
    todo = [dataclasses.replace(job, threads=config.threads) for job in jobs(config, out)]
    done, jobs_s = run_jobs(todo, workers, desc="demo", preload=(RUNS,))
    per_seed: list[dict[str, Any]] = []
    for i, seed in enumerate(config.seed_list):
        rows = {m: done[f"eval/seed{seed}/{m}"] for m in TRAINED}
        if i == 0:  # one base policy for every seed: counted once
            rows["base"] = done["eval/base"]
        uses = {"rerank": done[f"seed{seed}/rerank"], "localize": done[f"seed{seed}/localize"]}
        per_seed.append({"seed": seed, "dir": str(out / f"seed{seed}"), "rows": rows, **uses})

    results = {
        "seeds": config.seed_list,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "base_training_s": round(done["base"]["wall_time_s"], 1),
        "environment": environment(threads=config.threads),
        "jobs_s": {name: round(s, 1) for name, s in jobs_s.items()},  # each job's own time (they overlap)
        "config": dataclasses.asdict(config),
        "training": pool_eval(per_seed, ("base", *TRAINED), config.n_samples),
        "comparisons": {
            **compare(per_seed, TRAINED, "base"),
            **compare(per_seed, RL, "sft"),
            **compare(per_seed, ("airl_dense", "airl_outcome"), "grpo_verifier"),
        },
        "training_logs": {f"seed{s}/{m}": done[f"seed{s}/{m}"] for s in config.seed_list for m in RL},
        "selection": selection(
            done["base"]["validation_greedy"],
            {f"seed{s}/{m}": done[f"seed{s}/{m}"]["best"] for s in config.seed_list for m in TRAINED},
        ),
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
    print(format_training_logs(results))
    print(format_selection(results))
    print(format_reference(results))
    from rairl.report import html  # loads torch: only now, with the workers gone

    html.render(html.Config(run_dir=str(out)))  # heat maps from the token rewards rerank and localize saved
    logger.info("demo finished in %.0f s; results in %s", results["wall_time_s"], out / "results.json")
    return results
