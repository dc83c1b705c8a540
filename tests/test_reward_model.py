"""rairl.reward_model: token rewards = clip(backfill(s / temperature on the granularity mask)), scoring order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rairl.discriminator import Discriminator
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardSettings

PROMPT = "Q:\n"  # 3 characters: the response starts at column 3
RESPONSE = "1+1=2\n#### 2"  # steps (0, 5), (6, 12); 12 characters + EOS = response columns 3..15


@pytest.fixture(scope="module")
def disc_and_tok(tiny_disc):
    _, tokenizer, disc = tiny_disc(head_seed=1, temperature=2.0)
    return disc, tokenizer


def hand_scores(width: int) -> torch.Tensor:
    """s_t = t - 8 on column t: values differ on every column, some beyond the clip range once halved."""
    return (torch.arange(width, dtype=torch.float32) - 8.0)[None]


@pytest.mark.parametrize(
    "granularity, expected",
    [
        # v_t = s_t / 2 = (t - 8) / 2, clipped to [-2, 2]. Step ends: columns 3+4 = 7 and 3+11 = 14; last token 15.
        ("outcome", [0.0] * 3 + [2.0] * 13),  # every response token gets v_15 = 3.5 -> 2
        ("step", [0.0] * 3 + [-0.5] * 5 + [2.0] * 7 + [2.0]),  # v_7 = -0.5; v_14 = 3 -> 2; v_15 -> 2
        ("dense", [0.0] * 3 + [-2.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0]),
        ("interval", [0.0] * 3 + [-1.5] * 3 + [0.0] * 3 + [1.5] * 3 + [2.0] * 4),  # k=3: columns 5, 8, 11, 14, 15
    ],
)
def test_token_rewards_backfill_and_clip_the_scores_on_the_mask(disc_and_tok, granularity, expected):
    disc, tok = disc_and_tok
    rm = RewardModel(disc, tok, RewardSettings(granularity=granularity, interval=3, clip_beta=2.0))
    batch = rm.encode([PROMPT], [RESPONSE])
    assert batch.input_ids.shape == (1, 16) and batch.step_ends == [[7, 14]]
    rewards = rm.token_rewards(batch, scores=hand_scores(16))
    assert rewards[0].tolist() == pytest.approx(expected)


def test_token_rewards_without_clip_keep_the_values(disc_and_tok):
    disc, tok = disc_and_tok
    rm = RewardModel(disc, tok, RewardSettings(granularity="outcome", clip_beta=0.0))
    batch = rm.encode([PROMPT], [RESPONSE])
    assert rm.token_rewards(batch, scores=hand_scores(16))[0, 3:].tolist() == [3.5] * 13


def test_scores_come_back_in_input_order_despite_length_sorting(disc_and_tok):
    disc, tok = disc_and_tok
    rm = RewardModel(disc, tok, batch_size=2)
    prompts = ["Q:\n", "Question: a long one\n", "Q\n", "Q: mid\n", "Q:\n"]
    responses = ["1", "2+2=4\n#### 4", "1+1=2\n3+4=7\n#### 7", "#### 0", "9*9=81\n#### 81"]
    batch = rm.encode(prompts, responses)
    scores = rm.scores(batch)
    assert scores.shape == batch.input_ids.shape
    disc.eval()
    with torch.no_grad():
        for b in range(len(batch)):
            one = batch.select([b])
            alone = disc(one.input_ids, one.attention_mask, one.response_mask)[0]
            n = int(one.attention_mask.sum())
            assert torch.allclose(scores[b, :n], alone[:n], atol=1e-5), b


def test_scoring_takes_no_gradient_and_restores_the_training_mode(disc_and_tok):
    disc, tok = disc_and_tok
    rm = RewardModel(disc, tok)
    batch = rm.encode([PROMPT], [RESPONSE])
    disc.train()
    disc.zero_grad(set_to_none=True)
    with torch.enable_grad():
        rewards = rm.token_rewards(batch)
    assert not rewards.requires_grad
    assert all(p.grad is None for p in disc.parameters())
    assert disc.training
    disc.eval()
    rm.scores(batch)
    assert not disc.training


def test_from_pretrained_loads_discriminator_and_tokenizer(disc_and_tok, tmp_path):
    disc, tok = disc_and_tok
    disc.save_pretrained(tmp_path, tok)
    rm = RewardModel.from_pretrained(tmp_path, granularity="step")
    batch = rm.encode([PROMPT], [RESPONSE])
    expected = RewardModel(disc, tok, RewardSettings(granularity="step")).token_rewards(batch)
    assert torch.allclose(rm.token_rewards(batch), expected, atol=1e-6)


def test_score_form_f_starts_at_the_likelihood_baseline(tiny_lm):
    """f_t = s_t + ℓ_t with a zero head is the base LM's ℓ_t exactly: the learned score starts where the
    likelihood baseline is, and the logit form (AIRL's training reward) starts at 0."""
    from rairl.inference.likelihood import LikelihoodScorer

    model, tokenizer = tiny_lm()
    disc = Discriminator.from_causal_lm(model, True, likelihood_from="reference", head_init="zero")
    prompts, responses = [PROMPT, PROMPT], [RESPONSE, "1+2=4\n#### 4"]
    f = RewardModel(disc, tokenizer, RewardSettings(score_form="f", clip_beta=0.5)).score(prompts, responses)
    logit = RewardModel(disc, tokenizer, RewardSettings(score_form="logit", clip_beta=0.5)).score(prompts, responses)
    base = LikelihoodScorer(model.eval(), tokenizer).score(prompts, responses)
    for a, b, z in zip(f.tokens, base.tokens, logit.tokens):
        np.testing.assert_allclose(a, b, rtol=1.3e-6, atol=1e-5)  # unclipped, though some ℓ_t < -0.5
        assert not z.any()
    assert f.traces["mean"] == pytest.approx(base.traces["mean"])


def test_score_form_f_needs_likelihood(disc_and_tok, tiny_lm):
    model, tokenizer = tiny_lm()
    with pytest.raises(ValueError, match="needs a likelihood-aware discriminator"):
        RewardModel(Discriminator.from_causal_lm(model, False), tokenizer, RewardSettings(score_form="f"))


@pytest.mark.parametrize("form", ["f", "logit"])
def test_score_parts_splits_the_reward_into_its_learned_part_in_one_pass(disc_and_tok, form, monkeypatch):
    disc, tok = disc_and_tok
    rm = RewardModel(disc, tok, RewardSettings(score_form=form))
    calls = []
    terms = Discriminator.terms
    monkeypatch.setattr(Discriminator, "terms", lambda self, *a, **k: calls.append(1) or terms(self, *a, **k))
    parts = rm.score_parts([PROMPT], [RESPONSE], aggregates=("mean", "min"))
    assert len(calls) == 1  # one forward pass for both parts
    value, learned = parts["value"], parts["learned"]
    assert np.array_equal(value.tokens[0], rm.score([PROMPT], [RESPONSE]).tokens[0])
    batch = rm.encode([PROMPT], [RESPONSE])
    s, ell = rm.score_terms(batch)
    response = batch.response_mask[0]
    if form == "f":  # f_t = v_t + ℓ_t (dense), the learned part v_t = s_t / T
        np.testing.assert_allclose(learned.tokens[0], (s[0, response] / disc.temperature).numpy(), rtol=1e-6)
        np.testing.assert_allclose(value.tokens[0] - learned.tokens[0], ell[0, response].numpy(), rtol=1e-5, atol=1e-6)
    else:  # the logit form adds no likelihood back: all of it is learned
        assert np.array_equal(learned.tokens[0], value.tokens[0])
    assert learned.traces["min"][0] == pytest.approx(float(learned.tokens[0].min()))
