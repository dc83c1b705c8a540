"""`rairl sft` and the shared trainer pieces (rairl.trainers.common), on a 1-layer, 32-wide model."""

from __future__ import annotations

import json
import math

import pytest
import torch
from datasets import Dataset
from flags import TINY
from transformers import TrainerControl, TrainerState, TrainingArguments

from rairl.cli import main
from rairl.models import ModelArgs, build_char_tokenizer, load_policy
from rairl.tasks.base import Example, Task
from rairl.trainers.common import JsonlLogCallback, demonstrations, save_final
from rairl.trainers.sft import Config, build_trainer, count_truncated


class ListTask(Task):
    """A task over a fixed list of examples (one split, `train`)."""

    name = "list"
    splits = ("train",)

    def __init__(self, examples: list[Example]):
        self._examples = examples

    def examples(self, split: str) -> list[Example]:
        return self._examples

    def is_correct(self, predicted, example) -> bool:
        return predicted == example.answer


# --- common ---------------------------------------------------------------------------------------------------


def test_demonstrations_are_prompt_completion_pairs_without_expertless_examples():
    task = ListTask([Example("a", "1+1?", "2", "1+1=2\n#### 2"), Example("b", "2+2?", "4", None)])
    rows = demonstrations(task).to_list()
    assert rows == [{"prompt": "Question: 1+1?\nAnswer:\n", "completion": "1+1=2\n#### 2"}]


def test_demonstrations_without_any_expert_trace_is_an_error():
    with pytest.raises(ValueError, match="none of the 1 examples has an expert trace"):
        demonstrations(ListTask([Example("b", "2+2?", "4", None)]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threads": -1}, "threads must be >= 0"),
        ({"warmup_steps": -1}, "warmup_steps >= 0"),
        ({"lr_scheduler_type": "cosin"}, "cosin"),
        ({"max_length": 1}, "max_length must be >= 2"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Config(**kwargs)


def test_jsonl_log_callback_appends_one_line_per_log(tmp_path, read_log):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state = TrainerState(global_step=3)
    callback = JsonlLogCallback()
    callback.on_train_begin(args, state, TrainerControl())
    callback.on_log(args, state, TrainerControl(), logs={"loss": 1.5})
    state.global_step = 4
    callback.on_log(args, state, TrainerControl(), logs={"loss": 1.25, "learning_rate": 0.1})
    rows = read_log(tmp_path)
    times = [row.pop("time_s") for row in rows]  # seconds since training began: seconds per step without a timer
    assert rows == [{"step": 3, "loss": 1.5}, {"step": 4, "loss": 1.25, "learning_rate": 0.1}]
    assert 0 <= times[0] <= times[1] < 60


def test_save_final_writes_a_loadable_model_and_keeps_other_files(tmp_path):
    args = ModelArgs(hidden_size=32, num_layers=1, num_heads=2, max_position_embeddings=64)
    model, tokenizer = load_policy(args, seed=1)
    (tmp_path / "checkpoint-5").mkdir()
    save_final(model, tokenizer, tmp_path)
    save_final(model, tokenizer, tmp_path)  # a second save replaces the first
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "checkpoint-5").is_dir()
    assert not (tmp_path / ".final").exists()
    loaded, loaded_tokenizer = load_policy(ModelArgs(model=str(tmp_path)))
    assert loaded_tokenizer("7+8=15")["input_ids"] == tokenizer("7+8=15")["input_ids"]
    for (name, p), q in zip(model.named_parameters(), loaded.parameters()):
        assert torch.equal(p, q), name


# --- rairl sft ------------------------------------------------------------------------------------------------


def test_count_truncated_counts_the_eos_trl_appends():
    dataset = Dataset.from_list([{"prompt": "Q:\n", "completion": "1+1=2"}, {"prompt": "Q:\n", "completion": "2"}])
    tokenizer = build_char_tokenizer()  # one token per character: 8 + EOS and 4 + EOS tokens
    assert [count_truncated(dataset, tokenizer, n) for n in (4, 5, 8, 9)] == [2, 1, 1, 0]


def test_loss_covers_the_completion_and_eos_only(tmp_path):
    tiny = dict(hidden_size=32, num_layers=1, num_heads=2, max_position_embeddings=64)
    config = Config(output_dir=str(tmp_path), report_to="none", **tiny)
    model, tokenizer = load_policy(config)
    dataset = Dataset.from_list([{"prompt": "Q: 1+1?\n", "completion": "1+1=2\n#### 2"}])
    row = build_trainer(config, model, tokenizer, dataset).train_dataset[0]
    prompt_len, completion = len("Q: 1+1?\n"), tokenizer("1+1=2\n#### 2")["input_ids"] + [tokenizer.eos_token_id]
    assert row["input_ids"][prompt_len:] == completion
    assert row["labels"] == [-100] * prompt_len + completion


def test_config_rejects_sequences_longer_than_the_tiny_context():
    with pytest.raises(ValueError, match="exceeds the tiny model's context"):
        Config(max_position_embeddings=128, max_length=256)


def test_sft_smoke(tmp_path, small_sft_run, read_log):
    out = tmp_path / "sft"
    argv = ["sft", "--output_dir", str(out), "--max_steps", "3", "--learning_rate", "1e-2", *small_sft_run]
    assert main([*argv, "--report_to", "tensorboard"]) == 0

    losses = [row["loss"] for row in read_log(out) if "loss" in row]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert (out / "model.safetensors").is_file() and list(out.glob("checkpoint-3/*.safetensors"))
    assert list(out.glob("runs/*/events.out.tfevents.*")), "no TensorBoard event file"
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 3

    initial, _ = load_policy(ModelArgs(hidden_size=32, num_layers=1, num_heads=2, max_position_embeddings=256), seed=0)
    trained, _ = load_policy(ModelArgs(model=str(out)))
    trained_params = dict(trained.named_parameters())
    for name, p in initial.named_parameters():
        assert not torch.equal(p, trained_params[name]), f"{name} did not change"


def test_sft_resume_continues_the_step_count(tmp_path, small_sft_run, read_log):
    out = tmp_path / "sft"
    common = ["--output_dir", str(out), "--save_steps", "2", "--report_to", "none", *small_sft_run]
    assert main(["sft", "--max_steps", "4", *common]) == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    first = read_log(out)

    assert main(["sft", "--max_steps", "6", "--resume_from_checkpoint", "last", *common]) == 0
    second = read_log(out)[len(first) :]
    assert [row["step"] for row in second if "loss" in row] == [5, 6]
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 6


def test_sft_resume_last_without_checkpoint_is_a_clean_error(tmp_path, capsys):
    assert main(["sft", "--output_dir", str(tmp_path), "--resume_from_checkpoint", "last", *TINY]) == 1
    assert "no complete checkpoint-STEP folder" in capsys.readouterr().err
