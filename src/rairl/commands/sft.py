"""`rairl sft`: supervised fine-tuning on the demonstrations (`rairl.trainers.sft`: its options and the trainer)."""

from __future__ import annotations

from typing import Any

from rairl.trainers.sft import Config, train

__all__ = ["Config", "run"]


def run(config: Config) -> dict[str, Any]:
    return train(config)
