"""`rairl sample`: N samples per question as JSONL (library: `rairl.inference.sampling`). Crash-safe: the samples
are appended to `OUTPUT.partial` chunk by chunk, and running the same command again after a crash resumes there
(`sample_to_file`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from transformers import set_seed

from rairl.config import config_dict
from rairl.inference.sampling import SamplingArgs, load_for_inference, sample_to_file, select_examples
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
    # What shapes the samples: resuming a stopped run (OUTPUT.partial) needs the same values.
    settings = {k: v for k, v in config_dict(config).items() if k not in ("output", "batch_size")}
    rows = sample_to_file(
        model,
        tokenizer,
        task,
        examples,
        config.output,
        settings=settings,
        seed=config.seed,
        n=config.n,
        chunk=max(1, config.batch_size // config.n),
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        greedy=config.greedy,
    )
    accuracy = sum(r["correct"] for r in rows) / max(1, len(rows))
    logger.info(
        "wrote %d samples of %d questions to %s (accuracy %.3f)", len(rows), len(examples), config.output, accuracy
    )
    return rows
