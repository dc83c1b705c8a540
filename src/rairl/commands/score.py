"""`rairl score`: token, step and trace scores of a JSONL of traces (library: `rairl.inference.scoring`,
`rairl.reward_model`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rairl.inference.scoring import RewardArgs, load_reward_model, read_traces, score_rows, scored_row
from rairl.io import write_jsonl
from rairl.tasks import TaskArgs, get_task

logger = logging.getLogger(__name__)


@dataclass
class Config(TaskArgs, RewardArgs):
    input: str = field(default="", metadata={"help": "JSONL of traces: prompt (or question) and response per line"})
    output: str = field(default="runs/scores.jsonl", metadata={"help": "JSONL file to write"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.input:
            raise ValueError("--input is required: a JSONL file with prompt (or question) and response per line")


def run(config: Config) -> list[dict[str, Any]]:
    task = get_task(config)
    traces = read_traces(config.input, task)
    model = load_reward_model(config, task)
    lines, rows, prompts = zip(*traces)
    responses = [row["response"] for row in rows]
    scores = score_rows(
        model.score,
        list(prompts),
        responses,
        list(lines),
        config.input,
        aggregates=config.aggregate_names,
    )
    eos = model.tokenizer.eos_token or ""
    out = [scored_row({**row, "prompt": prompt}, scores, b, eos) for b, (row, prompt) in enumerate(zip(rows, prompts))]
    write_jsonl(Path(config.output), out)
    logger.info("scored %d traces from %s into %s", len(out), config.input, config.output)
    return out
