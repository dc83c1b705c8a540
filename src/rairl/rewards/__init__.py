"""Reward math of R-AIRL (granularity masks, backfill, clip, token-level GRPO advantages) and the perturbation
registry that makes hard negatives and labelled errors."""

from rairl.rewards.advantages import (
    add_outcome_reward,
    discounted_returns,
    final_rewards,
    group_advantages,
    group_stats,
    reward_to_go,
    standardise,
)
from rairl.rewards.backfill import backfill, clip
from rairl.rewards.granularity import GRANULARITIES, granularity_mask, last_response_index
from rairl.rewards.perturb import PERTURBATIONS, Perturbed, perturb

__all__ = [
    "GRANULARITIES",
    "PERTURBATIONS",
    "Perturbed",
    "add_outcome_reward",
    "backfill",
    "clip",
    "discounted_returns",
    "final_rewards",
    "granularity_mask",
    "group_advantages",
    "group_stats",
    "last_response_index",
    "perturb",
    "reward_to_go",
    "standardise",
]
