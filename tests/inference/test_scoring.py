"""The scoring API of the reward model (rairl.reward_model) and `rairl score` (rairl.inference.scoring)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch import nn

from rairl.cli import main
from rairl.models import ModelArgs, build_tiny
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardSettings
from rairl.scores import AGGREGATIONS, NonFiniteScore

PROMPTS = ["Question: Ann has 3 pens, gets 4 more. How many?\nAnswer:\n", "Question: x\nAnswer:\n", "Q\n"]
RESPONSES = ["3+4=7\n#### 7", "1+1=3\n3*2=6\n#### 6", ""]


class Echo(nn.Module):
    """A stand-in discriminator whose score is the token id, so rewards are known by hand (s_t = id_t, or NaN)."""

    uses_likelihood = False

    def __init__(self, nan: bool = False):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device
        self.nan = nan

    def forward(self, input_ids, attention_mask, response_mask=None):
        return torch.full(input_ids.shape, math.nan) if self.nan else input_ids.float()

    def rewards(self, scores):
        return scores


@pytest.fixture(scope="module")
def tiny(tiny_disc):
    return tiny_disc(256)


def assert_same_scores(a, b) -> None:
    """Equal step and trace scores up to float32 rounding (pytest.approx does not nest)."""
    assert a.traces.keys() == b.traces.keys() and len(a.steps) == len(b.steps)
    for name in a.traces:
        assert a.traces[name] == pytest.approx(b.traces[name], rel=1e-5)
    for x, y in zip(a.steps, b.steps):
        assert x == pytest.approx(y, rel=1e-5)


def ids_of(tokenizer, texts, eos=False):
    tail = [tokenizer.eos_token_id] if eos else []
    return [tokenizer(t, add_special_tokens=False)["input_ids"] + tail for t in texts]


def test_three_views_agree_with_the_single_view_calls(tiny):
    _, tokenizer, disc = tiny
    rm = RewardModel(disc, tokenizer, RewardSettings(granularity="step", score_form="logit"))
    scores = rm.score(PROMPTS, RESPONSES, aggregate_discount=0.8)
    assert [len(t) for t in scores.tokens] == [len(r) + 1 for r in RESPONSES]  # char tokens + EOS
    assert [len(s) for s in scores.steps] == [2, 3, 0]
    assert sorted(scores.traces) == sorted(AGGREGATIONS)
    for a, b in zip(rm.score_tokens(PROMPTS, RESPONSES), scores.tokens):
        assert np.array_equal(a, b)
    assert rm.score_steps(PROMPTS, RESPONSES) == scores.steps
    assert rm.score_trace(PROMPTS, RESPONSES, "discounted", aggregate_discount=0.8) == scores.traces["discounted"]
    # step granularity: every token of a step carries the value read at the step's last token
    assert scores.steps[0][0] == pytest.approx(float(scores.tokens[0][0]))
    # batching and length-sorting do not change a score
    one = RewardModel(disc, tokenizer, RewardSettings(granularity="step", score_form="logit"), batch_size=1).score(
        PROMPTS, RESPONSES, aggregate_discount=0.8
    )
    assert_same_scores(one, scores)


def test_token_rewards_are_backfilled_step_values_hand_computed():
    from rairl.models import build_char_tokenizer

    tok = build_char_tokenizer()
    rm = RewardModel(Echo(), tok, RewardSettings(granularity="step", clip_beta=0.0))
    s = rm.score([PROMPTS[0]], [RESPONSES[0]], step_reduce="min")
    cid = tok.convert_tokens_to_ids
    # "3+4=7" takes the id of its last char '7'; "\n#### 7" that of the second '7'; EOS its own id
    expected = [cid("7")] * 5 + [cid("7")] * 7 + [tok.eos_token_id]
    assert s.tokens[0].tolist() == expected
    assert s.steps[0] == [cid("7"), cid("7")]
    assert s.traces["last"][0] == tok.eos_token_id
    assert s.token_spans[0][-1] == (12, 12)  # EOS: zero width at the end


def test_explicit_step_spans_allow_steps_with_newlines():
    from rairl.models import build_char_tokenizer

    tok = build_char_tokenizer()
    rm = RewardModel(Echo(), tok, RewardSettings(clip_beta=0.0))
    steps = ["a\nb", "cd"]
    response = "\n".join(steps)  # spans (0, 3) and (4, 6)
    s = rm.score(["Q\n"], [response], step_spans=[[(0, 3), (4, 6)]])
    assert s.steps[0] == [tok.convert_tokens_to_ids("b"), tok.convert_tokens_to_ids("d")]


def test_score_ids_equals_score_on_text_for_the_shared_tokenizer(tiny):
    _, tokenizer, disc = tiny
    rm = RewardModel(disc, tokenizer, RewardSettings(granularity="dense"))
    text = rm.score(PROMPTS, RESPONSES)
    ids = rm.score_ids(ids_of(tokenizer, PROMPTS), ids_of(tokenizer, RESPONSES, eos=True), tokenizer=tokenizer)
    for a, b in zip(text.tokens, ids.tokens):
        torch.testing.assert_close(a, b)
    assert_same_scores(ids, text)
    assert ids.token_spans == text.token_spans


def test_a_policy_with_another_tokenizer_gets_rewards_on_its_own_tokens(piece_tokenizer):
    from rairl.models import build_char_tokenizer

    rm_tok = build_char_tokenizer()
    # r_t = id of the reward model's (character) token t
    rm = RewardModel(Echo(), rm_tok, RewardSettings(granularity="dense", clip_beta=0.0))
    policy_tok = piece_tokenizer(["Question:", "3+4=", "7\n#", "### "])
    prompt, response = "Question: 3+4\nAnswer:\n", "3+4=7\n#### 7"
    p_ids = ids_of(policy_tok, [prompt])
    r_ids = ids_of(policy_tok, [response], eos=True)
    assert policy_tok.convert_ids_to_tokens(r_ids[0]) == ["3+4=", "7\n#", "### ", "7", "</s>"]
    scored = rm.score_ids(p_ids, r_ids, tokenizer=policy_tok)
    cid = rm_tok.convert_tokens_to_ids
    # each policy token takes the reward of the character token holding its last character; EOS the RM's EOS
    assert scored.tokens[0].tolist() == [cid("="), cid("#"), cid(" "), cid("7"), rm_tok.eos_token_id]
    assert scored.token_spans[0] == [(0, 4), (4, 7), (7, 11), (11, 12), (12, 12)]
    text = rm.score([prompt], [response])
    assert scored.steps == text.steps and scored.traces == text.traces


def test_nan_scores_raise():
    from rairl.models import build_char_tokenizer

    rm = RewardModel(Echo(nan=True), build_char_tokenizer())
    with pytest.raises(NonFiniteScore, match="trace 0: non-finite reward"):
        rm.score_trace(PROMPTS[:1], RESPONSES[:1])


def test_save_and_load_keep_the_reward_settings(tiny, tmp_path):
    _, tokenizer, disc = tiny
    rm = RewardModel(disc, tokenizer, RewardSettings(granularity="interval", interval=3, clip_beta=0.5))
    rm.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    assert loaded.settings == rm.settings
    assert (loaded.settings.granularity, loaded.settings.interval, loaded.settings.clip_beta) == ("interval", 3, 0.5)
    assert loaded.settings.score_form == "f"  # unset: settled by the discriminator, which reads ℓ_t
    assert loaded.score_trace(PROMPTS, RESPONSES) == pytest.approx(rm.score_trace(PROMPTS, RESPONSES))
    changed = RewardModel.from_pretrained(tmp_path / "rm", granularity="dense", interval=None).settings
    assert (changed.granularity, changed.interval) == ("dense", 3)  # None keeps the saved value


def test_as_reward_func_in_a_stock_grpo_trainer(tiny, tmp_path):
    from trl import GRPOConfig, GRPOTrainer

    _, tokenizer, disc = tiny
    policy, _ = build_tiny(ModelArgs(hidden_size=32, num_layers=1, num_heads=2, max_position_embeddings=256), seed=1)
    reward = RewardModel(disc, tokenizer).as_reward_func("mean")
    assert reward.__name__ == "learned_reward_mean"
    assert reward(PROMPTS[:2], RESPONSES[:2]) == pytest.approx(
        RewardModel(disc, tokenizer).score_trace(PROMPTS[:2], RESPONSES[:2], "mean")
    )
    args = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        bf16=False,
        disable_dropout=True,
        activation_checkpointing=False,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[reward],
        args=args,
        processing_class=tokenizer,
        train_dataset=Dataset.from_list([{"prompt": p} for p in PROMPTS[:2] * 4]),
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "rewards/learned_reward_mean/mean" in h]
    assert logged and math.isfinite(logged[0]["rewards/learned_reward_mean/mean"])


def test_as_reward_func_reads_trl_conversations_as_their_text(tiny):
    _, tokenizer, disc = tiny
    reward = RewardModel(disc, tokenizer).as_reward_func("min")
    chat = reward([[{"role": "user", "content": "hi"}]], [[{"role": "assistant", "content": "x"}]])
    assert chat == reward(["hi"], ["x"])
    with pytest.raises(ValueError, match="chat messages with text content"):
        reward([[{"role": "user"}]], ["x"])
    with pytest.raises(ValueError, match="Did you mean 'answer_span'"):
        RewardModel(disc, tokenizer).as_reward_func("answer_spam")


@pytest.fixture(scope="module")
def saved_rm(saved_tiny):
    return saved_tiny(256) / "disc"


def test_score_cli_writes_tokens_steps_and_traces(saved_rm, tmp_path):
    rows = [
        {"id": "a", "prompt": PROMPTS[0], "response": RESPONSES[0], "correct": True},
        {"question": "How many?", "response": RESPONSES[1]},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "score",
                "--reward_model",
                str(saved_rm),
                "--input",
                str(src),
                "--output",
                str(out),
                "--aggregates",
                "mean,answer_span",
                "--step_reduce",
                "min",
            ]
        )
        == 0
    )
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got[0]["id"] == "a" and got[0]["correct"] is True
    assert got[1]["prompt"] == "Question: How many?\nAnswer:\n"
    assert "".join(got[0]["tokens"][:-1]) == RESPONSES[0] and got[0]["tokens"][-1] == "</s>"
    assert len(got[0]["token_rewards"]) == len(got[0]["tokens"])
    assert len(got[1]["step_scores"]) == 3
    assert sorted(got[0]["trace_scores"]) == ["answer_span", "mean"]


def test_score_cli_names_file_line_and_field_of_bad_input(saved_rm, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": "Q", "response": "1"}) + "\n" + json.dumps({"prompt": "Q", "reply": "1"}))
    assert main(["score", "--reward_model", str(saved_rm), "--input", str(src)]) == 1
    assert f"{src}, line 2, field 'response'" in capsys.readouterr().err
    assert main(["score", "--reward_model", str(saved_rm), "--input", str(src), "--aggregates", "meen"]) == 1
    assert "Did you mean 'mean'" in capsys.readouterr().err


def test_long_scoring_shows_a_progress_bar_and_a_step_does_not(capsys):
    from rairl.trace_scorer import PROGRESS_MIN_BATCHES, forward_minibatches
    from rairl.traces import TraceBatch

    ids = torch.ones(PROGRESS_MIN_BATCHES, 3, dtype=torch.long)
    batch = TraceBatch(ids, torch.ones_like(ids), torch.ones_like(ids), [[2]] * PROGRESS_MIN_BATCHES)
    for rows, shown in (
        ([[i] for i in range(PROGRESS_MIN_BATCHES)], True),
        ([list(range(PROGRESS_MIN_BATCHES))], False),
    ):
        out = forward_minibatches(lambda b: b.input_ids.float(), batch, rows, "cpu")
        assert torch.equal(out, ids.float())
        assert (f"score:   0%|          | 0/{PROGRESS_MIN_BATCHES}" in capsys.readouterr().err) == shown
