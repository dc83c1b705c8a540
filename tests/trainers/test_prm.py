"""`rairl prm` (rairl.trainers.prm): the step losses by hand, a tiny run whose folder is a reward model scoring at
the positions it was trained on, LoRA merged on save, the command line."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from flags import TINY

from rairl.cli import main
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardSettings
from rairl.tasks import TaskArgs, get_task
from rairl.trainers.common import save_final
from rairl.trainers.prm import PRMConfig, build_trainer, step_bce, step_mse, train

PROMPT = "Question: Ann has 2 apples, gets 3 more, then gets 4 more. How many?\nAnswer:\n"
SIZE = dict(hidden_size=32, num_layers=1, num_heads=2, max_position_embeddings=256)


def write_rows(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def stepwise_file(tmp_path) -> str:
    rows = [
        {"prompt": PROMPT, "completions": ["2+3=5", "5+4=9", "#### 9"], "labels": [True, True, True]},
        {"prompt": PROMPT, "completions": ["2+3=6", "6+4=10", "#### 10"], "labels": [False, 0.0, 0.0]},
        {"prompt": PROMPT, "completions": ["2+3=5", "5+4=8", "#### 8"], "labels": [1, 0, 0.2]},
    ]
    return write_rows(tmp_path / "stepwise.jsonl", rows)


# --- the losses ----------------------------------------------------------------------------------------------


def test_bce_averages_each_trace_over_its_own_labels_then_over_traces():
    s = torch.tensor([[0.0, 2.0, 9.0], [1.0, 9.0, 9.0]])  # (B, T)
    y = torch.tensor([[1.0, 0.25, 0.0], [0.0, 0.0, 0.0]])
    m = torch.tensor([[True, True, False], [True, False, False]])
    bce = lambda s, y: -(y * math.log(1 / (1 + math.exp(-s))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-s))))  # noqa: E731
    row0 = (bce(0.0, 1.0) + bce(2.0, 0.25)) / 2
    row1 = bce(1.0, 0.0)
    assert step_bce(s, y, m).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_mse_fits_the_label_minus_one_half_and_an_unlabelled_batch_is_zero_with_a_gradient():
    s = torch.tensor([[0.5, -0.5, 3.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 0.0]])
    m = torch.tensor([[True, True, False]])
    assert step_mse(s, y, m).item() == pytest.approx(0.0)  # s = y - 1/2 exactly; position 2 ignored
    assert step_mse(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[True, True]])).item() == (
        pytest.approx(0.25)
    )
    zero = step_bce(s, y, torch.zeros_like(m))
    zero.backward()
    assert zero.item() == 0.0 and s.grad is not None


# --- training and the saved folder ---------------------------------------------------------------------------


def config(tmp_path, train_file: str, **kw) -> PRMConfig:
    values = dict(train_file=train_file, output_dir=str(tmp_path / "prm"), max_steps=6, per_device_train_batch_size=3,
                  threads=1, logging_steps=1, disable_tqdm=True, save_steps=3, **SIZE)  # fmt: skip
    return PRMConfig(**{**values, **kw})


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_a_tiny_run_trains_and_saves_a_reward_model_that_scores_where_it_was_trained(tmp_path, stepwise_file, loss):
    cfg = config(tmp_path, stepwise_file, loss=loss)
    trainer = build_trainer(cfg)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    assert losses and all(math.isfinite(x) for x in losses)
    moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert any("score" in n for n in moved) and any("layers" in n for n in moved)

    out = tmp_path / "saved"
    cfg2 = config(tmp_path, stepwise_file, loss=loss, output_dir=str(out))
    assert train(cfg2)["steps"] == 6
    settings = RewardSettings.load(out)
    assert (settings.granularity, settings.score_form, settings.clip_beta, settings.step_reduce) == (
        "step", "logit", 0.0, "last")  # fmt: skip
    rm = RewardModel.from_pretrained(out)
    assert not rm.discriminator.uses_likelihood
    steps = ["2+3=5", "5+4=8", "#### 8"]
    scored = rm.score([PROMPT], ["\n".join(steps)], aggregates=("last",))
    # the PRM's own logits at the positions its labels sat at (encode_step_examples) are the step scores
    from rairl.trainers.prm_data import encode_step_examples, read_step_examples

    row = encode_step_examples(rm.tokenizer, read_step_examples([stepwise_file], get_task(TaskArgs())))[2]
    with torch.no_grad():
        logits = rm.discriminator.classifier.eval()(torch.tensor([row["input_ids"]])).logits[0, :, 0]
    expected = logits[row["label_positions"]].tolist()
    assert scored.steps[0] == pytest.approx(expected[:3], abs=1e-5)
    assert scored.traces["last"][0] == pytest.approx(expected[3], abs=1e-5)  # EOS: the trace's label


def test_lora_adapters_train_and_the_saved_folder_holds_them_merged(tmp_path, stepwise_file):
    cfg = config(tmp_path, stepwise_file, lora_r=4, lora_alpha=8, learning_rate=1e-2)
    trainer = build_trainer(cfg)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any("score" in n for n in trainable)
    assert not any("lora_" in n and "score" in n for n in trainable)  # the head trains in full
    trainer.train()
    ids = torch.tensor([trainer.processing_class(PROMPT + "2+3=5")["input_ids"]])
    with torch.no_grad():
        adapted = trainer.model.eval()(input_ids=ids).logits[0, :, 0]
    save_final(trainer.model, trainer.processing_class, tmp_path / "merged")
    rm = RewardModel.from_pretrained(tmp_path / "merged")
    keys = rm.discriminator.classifier.state_dict().keys()
    assert not any("lora_" in k for k in keys) and "score.weight" in keys
    with torch.no_grad():
        merged = rm.discriminator.classifier.eval()(input_ids=ids).logits[0, :, 0]
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=0)


def test_output_dir_of_a_finished_run_is_refused_unless_resumed(tmp_path, stepwise_file):
    cfg = config(tmp_path, stepwise_file, max_steps=3)
    train(cfg)
    with pytest.raises(FileExistsError, match="already holds a finished run"):
        train(config(tmp_path, stepwise_file, max_steps=3))
    assert train(config(tmp_path, stepwise_file, max_steps=3, resume_from_checkpoint="last"))["steps"] == 3


# --- the command line ----------------------------------------------------------------------------------------


def test_help_lists_the_prm_options(capsys):
    with pytest.raises(SystemExit) as done:
        main(["prm", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in ("--train_file", "--data_format", "--loss", "--shuffle_labels", "--lora_r", "--max_steps"):
        assert option in text


def test_a_bad_row_ends_the_command_with_one_line(tmp_path, capsys):
    f = write_rows(tmp_path / "bad.jsonl", [{"prompt": "p", "completions": ["a", "b"], "labels": [True]}])
    assert main(["prm", "--train_file", f, "--output_dir", str(tmp_path / "o"), *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {f}, line 1, field 'labels': 1 labels for 2 steps; lengths differ"


def test_a_tiny_budget_run_from_the_command_line(tmp_path, stepwise_file):
    out = tmp_path / "cli"
    args = [sys.executable, "-m", "rairl.cli", "prm", "--train_file", stepwise_file, "--output_dir", str(out),
            "--max_steps", "2", "--per_device_train_batch_size", "2", "--threads", "1", "--disable_tqdm", "true",
            *TINY]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["command"] == "prm" and summary["steps"] == 2
    assert RewardModel.from_pretrained(out).settings.granularity == "step"


def marked_rows(n: int, seed: int) -> list[dict]:
    """Stepwise rows of 3 steps of random letters; in half of them a step from the first error on holds an 'X' (the
    rule a tiny model can learn in seconds: "an X so far"), labelled False there, True before."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        first = rng.randrange(3) if i % 2 else -1
        steps = ["".join(rng.choice("abcdefgh") for _ in range(6)) for _ in range(3)]
        if first >= 0:
            steps[first] = steps[first][:3] + "X" + steps[first][4:]
        labels = [first < 0 or k < first for k in range(3)]
        rows.append({"prompt": "Question: q\nAnswer:\n", "completions": steps, "labels": labels, "first": first})
    return rows


def test_a_prm_on_true_labels_beats_one_on_shuffled_labels_at_first_error_exactness(tmp_path):
    """The labels reach the loss at their own steps: trained on the true labels, the PRM's first step scored below 0
    is the first error far more often than when the same traces' label lists are permuted (`--shuffle_labels`, the
    control); the paired difference over held-out erroneous traces has a 95% CI above 0. (On arith, a tiny backbone
    from scratch does not learn the checker's step labels in a test's budget: the rule here is one it can learn.)"""
    from rairl.evaluation.metrics import paired_diff

    data = write_rows(tmp_path / "marked.jsonl", marked_rows(256, seed=0))
    held_out = [r for r in marked_rows(120, seed=1) if r["first"] >= 0]
    hits = {}
    for shuffled in (False, True):
        out = tmp_path / f"prm-{shuffled}"
        train(PRMConfig(train_file=data, output_dir=str(out), shuffle_labels=shuffled, model="tiny", **SIZE,
                        max_steps=120, per_device_train_batch_size=32, learning_rate=3e-3, threads=1,
                        report_to="none", save_strategy="no", disable_tqdm=True))  # fmt: skip
        rm = RewardModel.from_pretrained(str(out))
        steps = rm.score([r["prompt"] for r in held_out], ["\n".join(r["completions"]) for r in held_out]).steps
        predicted = [next((k for k, v in enumerate(s) if v < 0), -1) for s in steps]
        hits[shuffled] = [float(p == r["first"]) for p, r in zip(predicted, held_out, strict=True)]
    gain = paired_diff(hits[False], hits[True])
    assert gain["ci95"][0] > 0, gain
