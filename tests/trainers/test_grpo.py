"""`rairl grpo` (TRL GRPOTrainer with the task's verifier reward) on a 1-layer, 32-wide policy."""

from __future__ import annotations

import json
import math

import pytest
from flags import TINY, rl_run

from rairl.cli import main
from rairl.config import parse_config
from rairl.models import ModelArgs, load_policy
from rairl.tasks import get_task
from rairl.trainers import grpo

RUN = rl_run(32, 8, 4, 16, "--warmup_steps", "0", "--max_steps", "2")


def test_grpo_trains_and_saves_the_policy(tmp_path, tiny_lm):
    assert main(["grpo", *RUN, "--output_dir", str(tmp_path)]) == 0
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [row for row in log if "loss" in row]
    assert len(steps) == 2 and all(math.isfinite(row["loss"]) for row in steps)
    assert "rewards/correctness/mean" in steps[0]
    assert json.loads((tmp_path / "train_summary.json").read_text())["steps"] == 2

    model, tokenizer = load_policy(ModelArgs(model=str(tmp_path)))
    initial, _ = tiny_lm(256)
    assert len(tokenizer) == model.config.vocab_size
    # a random policy solves nothing, so every advantage is 0 and the weights need not move; the saved model
    # is the same architecture, whole
    assert {k: v.shape for k, v in initial.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_correctness_reward_verifies_each_completion():
    config = parse_config(grpo.Config, ["--n_train", "4"])
    task = get_task(config)
    dataset, examples = grpo.prompt_dataset(task, "train")
    ids = [row["example_id"] for row in dataset]
    reward = grpo.correctness_reward(task, examples)
    completions = [examples[ids[0]].expert, "1+1=3\n#### nonsense"]
    assert reward(prompts=["", ""], completions=completions, example_id=ids[:2]) == [1.0, 0.0]


def test_group_size_must_be_at_least_two():
    with pytest.raises(ValueError, match="at least 2 generations"):
        parse_config(grpo.Config, ["--num_generations", "1"])


def test_kl_needs_a_reference_saved_beside_the_run(tmp_path, tiny_lm):
    config = parse_config(grpo.Config, [*TINY, "--beta", "0.1", "--output_dir", str(tmp_path)])
    model, tokenizer = tiny_lm()
    assert grpo.policy_source(model, tokenizer, config) is model
    assert model.config._name_or_path == str(tmp_path / "initial_policy")
    assert (tmp_path / "initial_policy" / "config.json").is_file()
