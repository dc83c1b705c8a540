"""Base-policy likelihood baseline (rairl.inference.likelihood) against log-probs read from the full logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rairl.inference.likelihood import DEFAULT_LOGPROB_THRESHOLD, LikelihoodScorer
from rairl.scores import first_below

PROMPTS = ["Question: 2+3\nAnswer:\n", "Question: a longer question\nAnswer:\n"]
RESPONSES = ["2+3=5\n#### 5", "1+1=2\n2*2=4\n#### 4"]


@pytest.fixture(scope="module")
def policy(tiny_lm):
    return tiny_lm(256)


def reference_logprobs(model, tokenizer, prompt: str, response: str) -> torch.Tensor:
    """log p(y_t | x, y_<t) of every response token (EOS appended) from one unbatched forward pass."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = p + tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    return torch.stack([logp[t - 1, ids[t]] for t in range(len(p), len(ids))])


def test_token_logprobs_match_the_full_logits(policy):
    model, tokenizer = policy
    scored = LikelihoodScorer(model, tokenizer, batch_size=1).score(PROMPTS, RESPONSES, step_reduce="min")
    for b in range(2):
        ref = reference_logprobs(model, tokenizer, PROMPTS[b], RESPONSES[b])
        np.testing.assert_allclose(scored.tokens[b], ref.numpy(), atol=1e-5, rtol=1e-5)
        assert scored.traces["mean"][b] == pytest.approx(float(ref.mean()), abs=1e-5)
        assert scored.traces["min"][b] == pytest.approx(float(ref.min()), abs=1e-5)
        assert scored.traces["sum"][b] == pytest.approx(float(ref.sum()), abs=1e-4)  # log p(y | x)
    # step 0 of trace 1 is "1+1=2": tokens 0..4; its score is their least likely token
    ref = reference_logprobs(model, tokenizer, PROMPTS[1], RESPONSES[1])
    assert scored.steps[1][0] == pytest.approx(float(ref[:5].min()), abs=1e-5)
    assert len(scored.steps[1]) == 3


def test_from_pretrained_reads_a_saved_policy(policy, tmp_path):
    model, tokenizer = policy
    model.save_pretrained(tmp_path / "p")
    tokenizer.save_pretrained(tmp_path / "p")
    loaded = LikelihoodScorer.from_pretrained(tmp_path / "p")
    a = loaded.score_trace(PROMPTS, RESPONSES, "mean")
    b = LikelihoodScorer(model, tokenizer).score_trace(PROMPTS, RESPONSES, "mean")
    assert a == pytest.approx(b, abs=1e-5)


def test_first_step_below_a_threshold():
    assert first_below([-0.5, -3.0, -4.0], DEFAULT_LOGPROB_THRESHOLD) == 1  # log 0.1 = -2.303
    assert first_below([-0.5, -1.0], DEFAULT_LOGPROB_THRESHOLD) == -1
    assert first_below([], 0.0) == -1
    assert DEFAULT_LOGPROB_THRESHOLD == pytest.approx(math.log(0.1))
