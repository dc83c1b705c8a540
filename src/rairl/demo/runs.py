"""What the demo's jobs run, each in a worker process of its own (`rairl.jobs`): the base, one policy, one policy's
evaluation, one seed's reranking or localisation. Every job reads what a finished earlier run of it wrote instead
of doing it again, so a demo stopped at any point resumes where it was.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from rairl.demo.config import DemoConfig
from rairl.inference.localize import LocalizeConfig, localize
from rairl.inference.rerank import RerankConfig, rerank
from rairl.inference.sampling import load_for_inference, sample_rows
from rairl.io import read_jsonl, write_json, write_jsonl
from rairl.models import ModelArgs
from rairl.tasks import TaskArgs, get_task
from rairl.trainers import airl, grpo, sft
from rairl.trainers.common import LOG_FILE, SUMMARY_FILE, finished
from rairl.trainers.monitor import log_summary
from rairl.trainers.validation import greedy_accuracy, read_best


def task_args(config: DemoConfig, n_train: int | None = None) -> TaskArgs:
    return TaskArgs(task=config.task, n_eval=config.n_eval, **({"n_train": n_train} if n_train else {}))


def base_config(config: DemoConfig, output_dir: str, seed: int = 0, **overrides: Any) -> sft.Config:
    """The base policy's SFT run: at most `base_steps` steps on `base_fraction` of the demonstrations, stopped at the
    first validation check that reaches `base_stop_at` (that step is the base), at `config.threads`
    torch threads (fixed, so one machine gives one base whatever its core count); `overrides` are SFT options
    (`benchmarks/base_spread.py` saves checkpoints)."""
    n_train = max(1, int(TaskArgs().n_train * config.base_fraction))
    options = dict(
        **dataclasses.asdict(task_args(config, n_train)),
        model="tiny",
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        output_dir=output_dir,
        max_steps=config.base_steps,
        warmup_steps=0.065,
        validation_every=config.base_validation_every if config.base_stop_at else 0,
        validation_stop_at=config.base_stop_at,
        lr_scheduler_kwargs={"num_cycles": config.base_schedule_cycles},
        report_to="none",
        save_steps=10**9,
        threads=config.threads,
        seed=seed,
        resume_from_checkpoint="auto",  # a demo stopped after the last checkpoint finishes from there
    )
    return sft.Config(**{**options, **overrides})


def train_base(config: DemoConfig, out: str) -> dict[str, float]:
    """The base policy in `out/base`; returns its training seconds and its greedy accuracy on validation (what each
    trained method's best step is read against)."""
    base = Path(out, "base")
    figures = base / "validation.json"
    if not figures.is_file():
        if not finished(base):
            sft.train(base_config(config, str(base)))
        task = get_task(task_args(config))
        model, tokenizer = load_for_inference(ModelArgs(model=str(base)))
        accuracy = greedy_accuracy(model, tokenizer, task, task.examples("validation"))
        wall = json.loads((base / SUMMARY_FILE).read_text())["wall_time_s"]
        write_json(figures, {"wall_time_s": wall, "validation_greedy": accuracy})
    return json.loads(figures.read_text())


def train_method(config: DemoConfig, base: str, seed: int, method: str, run: str) -> dict[str, Any]:
    """One policy from `base`: continued SFT (`sft_steps` updates) or R-AIRL dense/outcome or verifier GRPO
    (`policy_steps` updates each), every method at a constant learning rate, as `benchmarks/training_curves.py`
    chose each.
    Each keeps its best step on greedy validation accuracy (`validation_points` evaluations, `BestOnValidation`).
    Returns its log's summary (`log_summary`: training reward curve, grad-norm, the discriminator's accuracy) and
    `best`: the step kept, its validation accuracy and the curve."""
    if not finished(run):
        common = dict(
            **dataclasses.asdict(task_args(config)),
            model=base,
            seed=seed,
            report_to="none",
            save_steps=10**9,
            threads=config.threads,
            logging_steps=1,
            output_dir=run,
            resume_from_checkpoint="auto",  # a demo stopped after the last checkpoint finishes from there
            warmup_steps=0.0,
            lr_scheduler_type="constant",
        )
        every = lambda steps: max(1, steps // config.validation_points)  # noqa: E731
        batch = config.prompts_per_step * config.num_generations
        rl = dict(
            max_steps=config.policy_steps,
            num_generations=config.num_generations,
            per_device_train_batch_size=config.micro_batch,
            gradient_accumulation_steps=batch // config.micro_batch,  # one step still takes prompts × G
            learning_rate=config.rl_learning_rate,
            validation_every=every(config.policy_steps),
        )
        if method == "sft":
            sft.train(
                sft.Config(
                    **common,
                    max_steps=config.sft_steps,
                    learning_rate=config.sft_learning_rate,
                    validation_every=every(config.sft_steps),
                )
            )
        elif method == "grpo_verifier":
            grpo.train(grpo.Config(**common, **rl))
        else:
            granularity = method.removeprefix("airl_")
            airl.train(airl.Config(**common, **rl, granularity=granularity, disc_warmup_steps=config.disc_warmup_steps))
    return {**log_summary([row for _, row in read_jsonl(Path(run, LOG_FILE))]), "best": read_best(run)}


def evaluate(
    config: DemoConfig, policy: str, name: str, out: str, seed: int, sample_ood: bool = True
) -> dict[str, dict[str, list[dict]]]:
    """Greedy answers and N samples of one policy on test, greedy answers on the shift split, and on OOD greedy
    answers (and N samples with `sample_ood`), also written as JSONL (read when there)."""
    task = get_task(task_args(config))
    torch.manual_seed(seed)
    rows: dict[str, dict[str, list[dict]]] = {}
    model = tokenizer = None
    for split in ("test", "shift", "ood"):
        kinds = ("greedy", "samples") if split == "test" or (split == "ood" and sample_ood) else ("greedy",)
        files = {kind: Path(out, f"{name}_{split}_{kind}.jsonl") for kind in kinds}
        if all(f.is_file() for f in files.values()):
            rows[split] = {"samples": [], **{kind: [row for _, row in read_jsonl(f)] for kind, f in files.items()}}
            continue
        if model is None:
            model, tokenizer = load_for_inference(ModelArgs(model=policy))
        examples = task.examples(split)
        greedy = sample_rows(model, tokenizer, task, examples, greedy=True, batch_size=64, progress=False)
        sampled = []
        if "samples" in files:
            sampled = sample_rows(model, tokenizer, task, examples, n=config.n_samples, batch_size=128, progress=False)
            write_jsonl(files["samples"], sampled)
        write_jsonl(files["greedy"], greedy)
        rows[split] = {"greedy": greedy, "samples": sampled}
    return rows


def read_or_run(pipeline, pipeline_config) -> dict[str, Any]:
    """A pipeline's metrics.json when it already wrote one, else its run."""
    metrics = Path(pipeline_config.output_dir, "metrics.json")
    return json.loads(metrics.read_text()) if metrics.is_file() else pipeline(pipeline_config)


def rerank_runs(config: DemoConfig, reward_model: str, base: str, out: str, seed: int) -> dict[str, Any]:
    """The SFT and R-AIRL policies' samples (test and OOD) reranked by one learned reward."""
    reports = {}
    for policy in ("sft", "airl_dense"):
        for split in ("test", "ood"):
            name = f"{policy}_{split}"
            reports[name] = read_or_run(
                rerank,
                RerankConfig(
                    **dataclasses.asdict(task_args(config)),
                    reward_model=reward_model,
                    policy=base,
                    seed=seed,
                    samples=str(Path(out, "eval", f"{policy}_{split}_samples.jsonl")),
                    output_dir=str(Path(out, f"rerank_{name}")),
                ),
            )
    return reports


def localize_runs(config: DemoConfig, reward_model: str, base: str, out: str, seed: int) -> dict[str, Any]:
    """First errors found by one learned reward: injected (test, OOD) and the SFT policy's own (test, OOD), the
    thresholds calibrated on injected errors of the validation split."""
    sources = {
        "injected": dict(source="injected", split="test"),
        "injected_ood": dict(source="injected", split="ood"),
        "natural": dict(source="natural", samples=str(Path(out, "eval", "sft_test_samples.jsonl"))),
        "natural_ood": dict(source="natural", samples=str(Path(out, "eval", "sft_ood_samples.jsonl"))),
    }
    reports = {}
    for name, source in sources.items():
        reports[name] = read_or_run(
            localize,
            LocalizeConfig(
                **dataclasses.asdict(task_args(config)),
                **source,
                reward_model=reward_model,
                policy=base,
                seed=seed,
                calibrate=True,
                val_source="injected",
                val_split="validation",
                val_limit=config.n_eval,
                limit=config.n_eval if source["source"] == "injected" else 0,
                output_dir=str(Path(out, f"localize_{name}")),
            ),
        )
    return reports
