"""Fixtures of the trainer tests: a short tiny-model command line and the JSONL log a run writes."""

from __future__ import annotations

import json

import pytest
from flags import TINY


@pytest.fixture(scope="session")
def small_sft_run() -> list[str]:
    """Flags of a short `rairl sft` run: the tiny policy (32 wide, 1 layer, 256 positions), 64 examples in batches of
    8, a log row every step, one thread."""
    return TINY + ["--n_train", "64", "--per_device_train_batch_size", "8", "--logging_steps", "1", "--threads", "1"]


@pytest.fixture(scope="session")
def read_log():
    """`read_log(output_dir) -> rows`: the run's log.jsonl, one dict a line."""
    return lambda output_dir: [json.loads(line) for line in (output_dir / "log.jsonl").read_text().splitlines()]
