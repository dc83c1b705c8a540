"""`rairl sample`: N samples per question as JSONL (library: `rairl.inference.sampling`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import set_seed

from rairl.inference.sampling import (
    SamplingArgs,
    load_for_inference,
    sample_rows,
    select_examples,
)
from rairl.io import write_jsonl
from rairl.models import ModelArgs
from rairl.tasks import TaskArgs, get_task

logger = logging.getLogger(__name__)


@dataclass
class Config(TaskArgs, ModelArgs, SamplingArgs):
    split: str = field(default="test", metadata={"help": "split of the task to sample from"})
    greedy: bool = field(default=False, metadata={"help": "greedy decoding instead of sampling (needs n=1)"})
    output: str = field(default="runs/samples.jsonl", metadata={"help": "JSONL file to write"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.greedy and self.n != 1:
            raise ValueError(f"greedy decoding gives one response per question: pass --n 1 (got n={self.n})")
        if not self.greedy:
            self.check_sampling()


def run(config: Config) -> list[dict[str, Any]]:
    set_seed(config.seed)
    task = get_task(config)
    examples = select_examples(task, config.split, config.limit)
    model, tokenizer = load_for_inference(config, seed=config.seed)
    rows = sample_rows(
        model,
        tokenizer,
        task,
        examples,
        n=config.n,
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        greedy=config.greedy,
    )
    write_jsonl(Path(config.output), rows)
    accuracy = sum(r["correct"] for r in rows) / max(1, len(rows))
    logger.info(
        "wrote %d samples of %d questions to %s (accuracy %.3f)", len(rows), len(examples), config.output, accuracy
    )
    return rows
