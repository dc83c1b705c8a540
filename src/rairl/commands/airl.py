"""`rairl airl`: adversarial IRL: learn the reward and train the policy on it (`rairl.trainers.airl`: its
options and the trainer)."""

from __future__ import annotations

from typing import Any

from rairl.trainers.airl import Config, train

__all__ = ["Config", "run"]


def run(config: Config) -> dict[str, Any]:
    return train(config)
