"""`rairl grpo`: GRPO with the task's verifier reward (`rairl.trainers.grpo`: its options and the trainer)."""

from __future__ import annotations

from typing import Any

from rairl.trainers.grpo import Config, train

__all__ = ["Config", "run"]


def run(config: Config) -> dict[str, Any]:
    return train(config)
