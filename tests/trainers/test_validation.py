"""In-run model selection on validation (`rairl.trainers.validation`): the best step's weights are the final model."""

from __future__ import annotations

import json

import pytest
import torch
from flags import TINY
from safetensors.torch import load_file

from rairl.cli import main
from rairl.trainers import validation
from rairl.trainers.validation import read_best


def test_sft_keeps_the_best_validation_step_as_its_final_model(tmp_path, monkeypatch):
    scores = iter([0.25, 0.75, 0.5])  # the second evaluation (step 4) is the best
    monkeypatch.setattr(validation, "greedy_accuracy", lambda *args: next(scores))
    out = tmp_path / "sft"
    argv = ["sft", "--model", "tiny", *TINY, "--n_train", "8", "--n_eval", "4", "--max_steps", "6",
            "--per_device_train_batch_size", "4", "--report_to", "none", "--threads", "1", "--validation_every", "2",
            "--save_steps", "2", "--save_total_limit", "5", "--output_dir", str(out)]  # fmt: skip
    assert main(argv) == 0

    best = read_best(out)
    assert best["step"] == 4 and best["accuracy"] == 0.75
    assert [p["step"] for p in best["curve"]] == [2, 4, 6]
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["eval/greedy_accuracy"] for r in logged if "eval/greedy_accuracy" in r] == [0.25, 0.75, 0.5]
    final, at_best, last = (
        load_file(p / "model.safetensors") for p in (out, out / "checkpoint-4", out / "checkpoint-6")
    )
    name = "model.layers.0.mlp.down_proj.weight"
    assert torch.equal(final[name], at_best[name])  # the best step's weights, not the last step's
    assert not torch.equal(final[name], last[name])


def test_training_stops_at_the_first_step_whose_validation_accuracy_reaches_the_bar(tmp_path, monkeypatch):
    scores = iter([0.25, 0.75, 0.9])
    monkeypatch.setattr(validation, "greedy_accuracy", lambda *args: next(scores))
    out = tmp_path / "sft"
    argv = ["sft", "--model", "tiny", *TINY, "--n_train", "8", "--n_eval", "4", "--max_steps", "6",
            "--per_device_train_batch_size", "4", "--report_to", "none", "--threads", "1", "--validation_every", "2",
            "--validation_stop_at", "0.7", "--save_steps", "2", "--save_total_limit", "5",
            "--output_dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    best = read_best(out)
    assert best["step"] == 4 and [p["step"] for p in best["curve"]] == [2, 4]
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 4
    name = "model.layers.0.mlp.down_proj.weight"
    final, at_stop = (load_file(folder / "model.safetensors") for folder in (out, out / "checkpoint-4"))
    assert torch.equal(final[name], at_stop[name])
    with pytest.raises(ValueError, match="needs --validation_every"):
        main_config(validation_stop_at=0.5)


def main_config(**kwargs):
    from rairl.trainers.sft import Config

    return Config(model="tiny", output_dir="unused", **kwargs)
