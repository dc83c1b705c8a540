"""rairl.trainers.monitor: reward–correctness statistics and the saturation / decoupling warnings."""

from __future__ import annotations

import pytest
import torch

from rairl.trainers.monitor import HealthMonitor, reward_correctness_stats


def test_perfectly_separated_rewards_correlate_one():
    stats = reward_correctness_stats(torch.tensor([2.0, 2.0, -1.0, -1.0]), torch.tensor([True, True, False, False]))
    assert stats["reward/corr"] == pytest.approx(1.0)
    assert stats["reward/mean_correct"] == 2.0 and stats["reward/mean_wrong"] == -1.0
    assert stats["reward/mean"] == 0.5 and stats["policy/accuracy"] == 0.5


def test_correlation_by_hand():
    # r = (1, 2, 3, 6), c = (0, 0, 1, 1): point-biserial r = (m1 - m0) / s * sqrt(p q) with population s
    rewards, correct = torch.tensor([1.0, 2.0, 3.0, 6.0]), torch.tensor([False, False, True, True])
    s = torch.tensor([1.0, 2.0, 3.0, 6.0]).std(unbiased=False).item()
    expected = (4.5 - 1.5) / s * 0.5
    assert reward_correctness_stats(rewards, correct)["reward/corr"] == pytest.approx(expected)


def test_no_correlation_without_variation():
    stats = reward_correctness_stats(torch.tensor([1.0, 2.0]), torch.tensor([False, False]))
    assert "reward/corr" not in stats and "reward/mean_correct" not in stats
    assert stats["reward/mean_wrong"] == 1.5


def test_shapes_must_match():
    with pytest.raises(ValueError, match="must match"):
        reward_correctness_stats(torch.zeros(3), torch.zeros(2, dtype=torch.bool))


def test_saturation_is_raised_after_window_steps_in_a_row():
    monitor = HealthMonitor(window=3, threshold=0.9)
    saturated = {"disc/acc_expert": 1.0, "disc/acc_policy": 0.95}
    assert monitor.update(saturated) == []
    assert monitor.update(saturated) == []
    (warning,) = monitor.update(saturated)
    assert warning.startswith("saturation")
    assert monitor.update({"disc/acc_expert": 1.0, "disc/acc_policy": 0.5}) == []  # the run of steps is broken
    assert monitor.update(saturated) == []


def test_steps_without_a_discriminator_update_neither_extend_nor_break_saturation():
    monitor = HealthMonitor(window=2, threshold=0.9)
    saturated = {"disc/acc_expert": 1.0, "disc/acc_policy": 0.95}
    assert monitor.update(saturated) == []
    assert monitor.update({"reward/mean": 0.0}) == []  # no update this step (--disc_update_every)
    (warning,) = monitor.update(saturated)
    assert warning.startswith("saturation")


def test_saturation_needs_both_accuracies():
    monitor = HealthMonitor(window=1, threshold=0.9)
    assert monitor.update({"disc/acc_expert": 1.0}) == []
    assert monitor.update({"disc/acc_policy": 1.0}) == []


def test_decoupling_when_reward_rises_and_accuracy_falls():
    monitor = HealthMonitor(window=4, min_drop=0.05)
    steps = [(0.0, 0.8), (1.0, 0.7), (2.0, 0.6)]
    for reward, acc in steps:
        assert monitor.update({"reward/mean": reward, "policy/accuracy": acc}) == []  # the window is not full yet
    (warning,) = monitor.update({"reward/mean": 3.0, "policy/accuracy": 0.5})
    assert warning.startswith("decoupling") and "0.300" in warning  # slope -0.1 over 3 steps


def test_no_decoupling_when_both_rise_or_the_drop_is_small():
    rising = HealthMonitor(window=3)
    small = HealthMonitor(window=3, min_drop=0.05)
    for i in range(5):
        assert rising.update({"reward/mean": float(i), "policy/accuracy": 0.1 * i}) == []
        assert small.update({"reward/mean": float(i), "policy/accuracy": 0.5 - 0.01 * i}) == []


def test_spike_monitor_flags_100x_the_running_median():
    from rairl.trainers.monitor import SpikeMonitor

    monitor = SpikeMonitor()
    for value in (10.0, -12.0, 8.0):  # history of |values|: median 10
        assert monitor.update({"loss": value}) == []
    assert monitor.update({"loss": 999.0}) == []  # 99.9x: not a spike
    warnings = monitor.update({"loss": -25_443.0, "grad_norm": 3.0})  # grad_norm has too short a history
    assert len(warnings) == 1 and warnings[0].startswith("spike: loss = -2.544e+04")
    assert monitor.count == 1


def test_spike_monitor_ignores_values_near_zero_and_non_finite():
    from rairl.trainers.monitor import SpikeMonitor

    monitor = SpikeMonitor()
    for value in (0.0, 1e-6, 0.0, float("nan")):
        monitor.update({"loss": value})
    assert monitor.update({"loss": 0.05}) == []  # median 0 floors at 1e-3: 50x
    assert monitor.update({"loss": 0.2})  # 200x the floor


def test_spike_callback_counts_into_the_log():
    from types import SimpleNamespace

    from rairl.trainers.monitor import SpikeCallback

    callback, state = SpikeCallback(), SimpleNamespace(global_step=1)
    logs = [{"loss": 1.0, "grad_norm": 30.0} for _ in range(3)] + [{"loss": 1.0, "grad_norm": 38_768.0}]
    for entry in logs:
        callback.on_log(None, state, None, logs=entry)
    assert [entry["monitor/spikes"] for entry in logs] == [0, 0, 0, 1]
