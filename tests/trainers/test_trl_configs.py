"""The trainers' configs are TRL's: every `GRPOConfig`/`SFTConfig` option is a flag of `rairl airl|grpo|sft`, a YAML
file written for TRL's `GRPOTrainer` runs with `rairl airl` unchanged (plus rairl's own keys), and the values reach
the trainer."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import trl
import yaml

from rairl.cli import main
from rairl.config import parse_config
from rairl.trainers import airl, sft

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "max_position_embeddings": 256}

# Keys of TRL's GRPOConfig only, as a TRL user writes them for `trl.GRPOTrainer`.
TRL_GRPO_YAML = {
    "learning_rate": 5.0e-5,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "max_steps": 2,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "num_generations": 4,
    "max_completion_length": 12,
    "beta": 0.0,
    "epsilon": 0.3,
    "loss_type": "dr_grpo",
    "scale_rewards": "batch",
    "temperature": 0.9,
    "top_p": 0.95,
    "bf16": False,
    "activation_checkpointing": False,
    "use_vllm": False,
    "vllm_mode": "colocate",
    "logging_steps": 1,
    "save_steps": 2,
    "report_to": "none",
    "seed": 3,
    "mask_truncated_completions": False,
}
# rairl's own keys: the task, the model, the discriminator.
RAIRL_KEYS = {"task": "arith", "n_train": 16, **TINY, "disc_warmup_steps": 0, "threads": 1}


@pytest.mark.parametrize(
    "command, trl_config", [("airl", trl.GRPOConfig), ("grpo", trl.GRPOConfig), ("sft", trl.SFTConfig)]
)
def test_help_lists_every_trl_option(command, trl_config, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    missing = [f.name for f in dataclasses.fields(trl_config) if f.init and not re.search(rf"--{f.name}\b", text)]
    assert not missing, f"rairl {command} --help lacks {missing}"


def write_yaml(path, values) -> str:
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_a_trl_grpo_yaml_reaches_the_trainer(tmp_path):
    path = write_yaml(tmp_path / "grpo.yaml", {**TRL_GRPO_YAML, **RAIRL_KEYS, "output_dir": str(tmp_path / "run")})
    config = parse_config(airl.Config, ["--config", path, "--top_p", "0.9"])  # a flag overrides the file
    assert isinstance(config, trl.GRPOConfig)
    trainer = airl.build_trainer(config)
    assert trainer.args is config
    assert trainer.loss_type == "dr_grpo" and trainer.scale_rewards == "batch"
    assert trainer.epsilon_low == trainer.epsilon_high == 0.3
    assert (trainer.temperature, trainer.top_p) == (0.9, 0.9)
    assert trainer.num_generations == 4
    assert trainer.args.lr_scheduler_type == "constant" and trainer.args.seed == 3


def test_rairl_airl_runs_a_trl_grpo_yaml(tmp_path):
    out = tmp_path / "run"
    path = write_yaml(tmp_path / "grpo.yaml", {**TRL_GRPO_YAML, **RAIRL_KEYS, "output_dir": str(out)})
    assert main(["airl", "--config", path]) == 0
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r] == [1, 2]
    assert (out / "model.safetensors").is_file() and (out / "discriminator" / "config.json").is_file()


def test_sft_config_is_the_trainers_args(tmp_path):
    values = {"max_steps": 1, "packing": False, "learning_rate": 1e-3, "max_length": 200, "n_train": 16, **TINY}
    path = write_yaml(tmp_path / "sft.yaml", {**values, "output_dir": str(tmp_path / "sft")})
    config = parse_config(sft.Config, ["--config", path])
    assert isinstance(config, trl.SFTConfig) and config.max_length == 200
    task = sft.get_task(config)
    model, tokenizer = sft.load_policy(config)
    trainer = sft.build_trainer(config, model, tokenizer, sft.demonstrations(task, "train", tokenizer))
    assert trainer.args is config and trainer.args.learning_rate == 1e-3


def test_airl_refuses_masked_truncated_completions(tmp_path):
    with pytest.raises(ValueError, match="mask_truncated_completions is not supported by R-AIRL"):
        airl.Config(output_dir=str(tmp_path), mask_truncated_completions=True)


def test_an_unknown_yaml_key_names_the_file(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", {"max_stepz": 3})
    with pytest.raises(SystemExit, match=r"bad\.yaml: unknown option\(s\) \['max_stepz'\]"):
        parse_config(airl.Config, ["--config", path])


def test_the_two_discounts_have_distinct_names_and_the_old_one_is_refused(tmp_path):
    from rairl.commands.rerank import Config as RerankConfig

    assert parse_config(airl.Config, ["--advantage_discount", "0.5"]).advantage_discount == 0.5
    with pytest.raises(SystemExit, match="--gamma was renamed advantage_discount"):
        parse_config(airl.Config, ["--gamma", "0.5"])
    with pytest.raises(SystemExit, match="--gamma was renamed aggregate_discount"):
        parse_config(RerankConfig, ["--samples", "s.jsonl", "--reward_model", "d", "--gamma=0.5"])
    path = write_yaml(tmp_path / "old.yaml", {"gamma": 0.9})
    with pytest.raises(SystemExit, match=r"old\.yaml: option gamma was renamed advantage_discount"):
        parse_config(airl.Config, ["--config", path])
