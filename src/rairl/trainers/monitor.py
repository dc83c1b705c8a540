"""Training health of R-AIRL (DESIGN §1.5): reward–correctness statistics, and warnings when the
discriminator saturates or the learned reward decouples from correctness.

Correlation: Pearson's r between each sample's trace reward r_T and its verified correctness c ∈ {0, 1}
(the point-biserial correlation). Decoupling: over the last `window` steps, the mean reward rose while the
policy's accuracy fell. Saturation: the discriminator classified experts and policy samples with accuracy
above `threshold` for `window` steps in a row (its gradients then carry little signal).
"""

from __future__ import annotations

import math
from collections import deque

import torch


def reward_correctness_stats(rewards: torch.Tensor, correct: torch.Tensor) -> dict[str, float]:
    """rewards (N,) float, correct (N,) bool -> mean reward of correct / wrong samples, their correlation, accuracy."""
    if rewards.shape != correct.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and correct {tuple(correct.shape)} must match")
    rewards, c = rewards.double(), correct.double()
    stats = {"policy/accuracy": c.mean().item(), "reward/mean": rewards.mean().item()}
    if correct.any():
        stats["reward/mean_correct"] = rewards[correct].mean().item()
    if (~correct).any():
        stats["reward/mean_wrong"] = rewards[~correct].mean().item()
    if rewards.numel() > 1 and rewards.std() > 0 and c.std() > 0:
        stats["reward/corr"] = torch.corrcoef(torch.stack([rewards, c]))[0, 1].item()
    return stats


def _slope(values: list[float]) -> float:
    """Least-squares slope of values against their index."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    cov = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    var = sum((i - mean_x) ** 2 for i in range(n))
    return cov / var if var else 0.0


class HealthMonitor:
    """Feeds on each step's stats; `update()` returns the warnings raised at this step."""

    def __init__(self, window: int = 10, threshold: float = 0.98, min_drop: float = 0.05):
        self.window, self.threshold, self.min_drop = window, threshold, min_drop
        self.rewards: deque[float] = deque(maxlen=window)
        self.accuracy: deque[float] = deque(maxlen=window)
        self.saturated_steps = 0

    def update(self, stats: dict[str, float]) -> list[str]:
        warnings = []
        if "reward/mean" in stats and "policy/accuracy" in stats:
            self.rewards.append(stats["reward/mean"])
            self.accuracy.append(stats["policy/accuracy"])
        if len(self.rewards) == self.window:
            reward_up = _slope(list(self.rewards)) > 0
            accuracy_drop = _slope(list(self.accuracy)) * (self.window - 1)
            if reward_up and accuracy_drop < -self.min_drop:
                warnings.append(
                    f"decoupling: mean reward rose while accuracy fell by {-accuracy_drop:.3f} over the last "
                    f"{self.window} steps"
                )
        # a step without a discriminator update (--disc_update_every) neither extends nor breaks the run
        if any(key.startswith("disc/") for key in stats):
            expert, policy = stats.get("disc/acc_expert", math.nan), stats.get("disc/acc_policy", math.nan)
            # both comparisons are False for a missing (NaN) accuracy; min() would drop a NaN in second place
            saturated = expert > self.threshold and policy > self.threshold
            self.saturated_steps = self.saturated_steps + 1 if saturated else 0
        if self.saturated_steps >= self.window:
            warnings.append(
                f"saturation: discriminator accuracy above {self.threshold} on experts and policy samples "
                f"for {self.saturated_steps} steps"
            )
        return warnings
