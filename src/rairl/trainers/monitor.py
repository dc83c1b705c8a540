"""Training health of R-AIRL (DESIGN §1.5): reward–correctness statistics, and warnings when the
discriminator saturates or the learned reward decouples from correctness.

Correlation: Pearson's r between each sample's trace reward r_T and its verified correctness c ∈ {0, 1}
(the point-biserial correlation). Decoupling: over the last `window` steps, the mean reward rose while the
policy's accuracy fell. Saturation: the discriminator classified experts and policy samples with accuracy
above `threshold` for `window` steps in a row (its gradients then carry little signal). Spike: a logged loss or
grad-norm whose magnitude exceeds `factor` (100) times the running median of its earlier values (`SpikeMonitor`,
attached to every trainer as `SpikeCallback`): a spike of 100x is a bug until explained.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)
SPIKE_KEYS = ("loss", "grad_norm")


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


def slope(values: list[float]) -> float:
    """Least-squares slope of values against their index."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    cov = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    var = sum((i - mean_x) ** 2 for i in range(n))
    return cov / var if var else 0.0


# What a run's log says about whether it learned (`log_summary`): the verifier's correctness of each step's
# samples (every RL trainer logs it: R-AIRL runs the verifier for monitoring only), the learned reward's correlation
# with it, and the discriminator's accuracy on experts, policy samples and perturbed experts.
SUMMARY_KEYS = ("rewards/correctness/mean", "reward/corr", "disc/acc_expert", "disc/acc_policy", "disc/acc_perturbed")


def log_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Of a run's log rows (`log.jsonl`): for each of `SUMMARY_KEYS` it holds, the means of its first and last thirds
    of steps and its least-squares slope per 100 steps; the largest grad-norm over the median grad-norm."""
    out: dict[str, dict[str, float]] = {}
    for key in SUMMARY_KEYS:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if values:
            third = max(1, len(values) // 3)
            out[key] = {
                "first_third": statistics.fmean(values[:third]),
                "last_third": statistics.fmean(values[-third:]),
                "slope_per_100_steps": 100 * slope(values),
                "steps": len(values),
            }
    grads = [r["grad_norm"] for r in rows if isinstance(r.get("grad_norm"), (int, float))]
    if grads:
        out["grad_norm"] = {"max": max(grads), "median": statistics.median(grads)}
    return out


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
            reward_up = slope(list(self.rewards)) > 0
            accuracy_drop = slope(list(self.accuracy)) * (self.window - 1)
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


class SpikeMonitor:
    """Warns when |value| > `factor` × the running median of the last `window` |values| of the same key (at least
    `min_history` earlier values; a median below `floor` counts as `floor`, so a run near zero is not flagged)."""

    def __init__(self, factor: float = 100.0, window: int = 50, min_history: int = 3, floor: float = 1e-3):
        self.factor, self.min_history, self.floor = factor, min_history, floor
        self.window = window
        self.history: dict[str, deque[float]] = {}
        self.count = 0

    def update(self, values: dict[str, float]) -> list[str]:
        warnings = []
        for key, value in values.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            past = self.history.setdefault(key, deque(maxlen=self.window))
            if len(past) >= self.min_history:
                median = max(statistics.median(past), self.floor)
                if abs(value) > self.factor * median:
                    self.count += 1
                    warnings.append(
                        f"spike: {key} = {value:.4g} is {abs(value) / median:.0f}x its running median {median:.4g}"
                    )
            past.append(abs(value))
        return warnings


class SpikeCallback(TrainerCallback):
    """Feeds each logged loss and grad-norm to a `SpikeMonitor`; a spike is logged as a warning and counted in the
    log as `monitor/spikes` (the running total)."""

    def __init__(self, factor: float = 100.0):
        self.monitor = SpikeMonitor(factor=factor)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        for warning in self.monitor.update({k: logs[k] for k in SPIKE_KEYS if k in logs}):
            logger.warning("step %d: %s", state.global_step, warning)
        logs["monitor/spikes"] = self.monitor.count
