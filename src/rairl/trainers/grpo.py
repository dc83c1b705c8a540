"""GRPO with the verifier (the `rairl grpo` command, `rairl.commands.grpo`), the reference that uses answer
labels: TRL's `GRPOTrainer` with the task's verifier reward r(x, y) = 1[answer(y) is correct]. Also holds the
GRPO options and pieces `rairl airl` shares with it.

GRPO (as TRL implements it): for G samples per prompt, A_i = (r_i - mean_g r) / (std_g r + 1e-4) on every token,
and the clipped surrogate  min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t)  with an optional KL to the reference (β).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trl
from datasets import Dataset

from rairl.chat import plain_text, trainer_prompt
from rairl.models import ModelArgs, load_policy
from rairl.options import check_number
from rairl.tasks import Example, Task, TaskArgs, get_task
from rairl.trainers.checkpoints import AtomicCheckpoints, resolve_resume
from rairl.trainers.common import RunArgs, finish, log_callbacks, set_threads
from rairl.trainers.validation import validation_callbacks

logger = logging.getLogger(__name__)


@dataclass
class GRPOConfig(RunArgs, trl.GRPOConfig):
    """TRL's `GRPOConfig` (every option, TRL's names: `beta` is the KL weight, `epsilon` the clip range, `loss_type`,
    `use_vllm`, ...) with rairl's defaults for small CPU runs; `rairl airl` extends it with the discriminator's."""

    output_dir: str | None = field(default="runs/grpo", metadata={"help": "run folder: checkpoints, logs, final model"})
    max_steps: int = field(default=100, metadata={"help": "optimizer steps to train for"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW; TRL: 1e-6)"})
    per_device_train_batch_size: int = field(
        default=32, metadata={"help": "sequences (prompts × num_generations) per step on each device (TRL: 8)"}
    )
    max_completion_length: int | None = field(default=64, metadata={"help": "most tokens per sample (TRL: 512)"})
    disable_dropout: bool = field(default=True, metadata={"help": "no dropout in the policy (TRL: off)"})

    def __post_init__(self) -> None:
        if self.num_generations is not None:  # TRL divides by it before it checks it (ZeroDivisionError at 0)
            check_number("--num_generations", self.num_generations, integer=True, low=1,
                         rule="must be >= 1 (and GRPO needs at least 2 generations per prompt)")  # fmt: skip
        super().__post_init__()


@dataclass
class Config(TaskArgs, ModelArgs, GRPOConfig):
    pass


class GRPOTrainer(AtomicCheckpoints, trl.GRPOTrainer):
    """TRL's `GRPOTrainer` with crash-safe checkpoints (`rairl.trainers.checkpoints`)."""


def prompt_dataset(task: Task, split: str, tokenizer=None) -> tuple[Dataset, dict[str, Example]]:
    """Prompts with their example id (reward functions look the example up by id), and the id → example map.
    With a `tokenizer` that has a chat template, prompts are user turns in TRL's conversational format."""
    examples = task.examples(split)
    rows = [{"prompt": trainer_prompt(tokenizer, task.prompt(ex)), "example_id": ex.id} for ex in examples]
    return Dataset.from_list(rows), {ex.id: ex for ex in examples}


def correctness_reward(task: Task, examples: dict[str, Example]) -> Callable[..., list[float]]:
    """A TRL reward function: 1.0 if the completion's final answer verifies, else 0.0."""

    def correctness(prompts, completions, example_id, **kwargs) -> list[float]:
        return [float(task.verify(plain_text(c), examples[i])) for c, i in zip(completions, example_id, strict=True)]

    return correctness


def policy_source(model, tokenizer, config: Any) -> Any:
    """With a KL term TRL loads a reference copy from the model's path; a tiny model built in memory is
    saved first so that the path exists. Without KL (β = 0) the model object itself is used: no copy."""
    if config.beta == 0 or model.config._name_or_path:
        return model
    path = Path(config.output_dir, "initial_policy")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    model.config._name_or_path = str(path)
    return model


def trainer_inputs(config: Any) -> tuple[Task, dict[str, Example], dict[str, Any]]:
    """The task, its training examples by id, and the keyword arguments a `GRPOTrainer` (or subclass) takes:
    policy, verifier reward, TRL config, prompt dataset, tokenizer and the JSONL log callback."""
    task = get_task(config)
    model, tokenizer = load_policy(config, seed=config.seed)
    dataset, examples = prompt_dataset(task, config.train_split, tokenizer)
    kwargs = dict(
        model=policy_source(model, tokenizer, config),
        reward_funcs=[correctness_reward(task, examples)],
        args=config,  # the config is TRL's GRPOConfig: every option given reaches the trainer
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=log_callbacks() + validation_callbacks(config, task, tokenizer),
    )
    return task, examples, kwargs


def train(config: Config) -> dict[str, Any]:
    """Train the policy on the verifier reward; the final model lands at the root of `output_dir`."""
    set_threads(config.threads)
    resume_from = resolve_resume(config.resume_from_checkpoint, config.output_dir)
    trainer = GRPOTrainer(**trainer_inputs(config)[2])
    start = time.perf_counter()
    trainer.train_to_end(resume_from)
    wall = time.perf_counter() - start
    summary = {"output_dir": config.output_dir, "steps": trainer.state.global_step, "wall_time_s": wall}
    finish(trainer, config.output_dir, summary)
    return summary
