"""`rairl prm`: train a process reward model from step labels (`rairl.trainers.prm`: its options, losses and
trainer; `rairl.trainers.prm_data`: the three data formats). The output folder is a reward model:
`rairl score / rerank / localize / search / serve --reward_model OUTPUT_DIR`, or `--reference_model OUTPUT_DIR`
beside a learned reward in `rairl rerank` and `rairl localize`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rairl.trainers.prm import PRMConfig, train

__all__ = ["Config", "run"]


@dataclass
class Config(PRMConfig):
    """`rairl prm`'s options (`rairl.trainers.prm.PRMConfig`)."""


def run(config: Config) -> dict[str, Any]:
    return train(config)
