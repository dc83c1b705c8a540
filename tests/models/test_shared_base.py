"""One base, three roles (issue 21): with LoRA on both sides the policy, the discriminator and the reference share
one copy of the base weights, and give the rewards and gradients of the separate-model path."""

from __future__ import annotations

import json
import re

import pytest
import torch
from flags import rl_run

from rairl.cli import main
from rairl.discriminator import Discriminator
from rairl.discriminator_losses import bce_loss
from rairl.models import ModelArgs, build_tiny
from rairl.models.factory import add_lora
from rairl.models.shared_base import DISC_ADAPTER, SharedBase
from rairl.traces import build_batch

TINY = ModelArgs(hidden_size=32, num_layers=1, num_heads=2, max_position_embeddings=128)


def lora_policy(seed: int = 0):
    model, tokenizer = build_tiny(TINY, seed=seed)
    policy = add_lora(model, 4, 8)
    with torch.no_grad():  # a policy adapter that has moved: the policy is no longer the base
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return policy, tokenizer


def suffix(name: str) -> str:
    """`...layers.0.self_attn.q_proj.lora_A.<adapter>.weight` -> `layers.0.self_attn.q_proj.lora_A`."""
    return re.sub(r"\.(default|discriminator)\.weight$", "", name[name.index("layers.") :])


def both_ways(policy):
    """The same discriminator twice: on the shared base, and as separate models (backbone and reference copies),
    their adapters and heads set equal and away from zero."""
    shared = SharedBase(policy, 4, 8)
    on_shared = Discriminator.from_shared_base(shared, head_init="zero")
    separate = Discriminator.from_causal_lm(policy, True, likelihood_from="reference", head_init="zero").add_lora(4, 8)
    torch.manual_seed(1)
    ours = {suffix(n): p for n, p in shared.policy.named_parameters() if f".{DISC_ADAPTER}." in n}
    theirs = {suffix(n): p for n, p in separate.classifier.named_parameters() if "lora_" in n}
    assert ours.keys() == theirs.keys() and ours
    with torch.no_grad():
        for key, p in ours.items():
            p.normal_(0, 0.3)
            theirs[key].copy_(p)
        for a, b in zip(on_shared.head_parameters(), separate.head_parameters()):
            a.normal_(0, 0.5)
            b.copy_(a)
    return shared, on_shared, separate


def traces(tokenizer):
    prompts = [tokenizer("Q: 2+3?\n", add_special_tokens=False)["input_ids"]] * 2
    responses = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("2+3=5\n#### 5", "2+3=6\n#### 6")]
    return build_batch(prompts, responses, [[], []], tokenizer.pad_token_id)


def test_one_copy_of_the_base_serves_three_roles():
    policy, _ = lora_policy()
    shared = SharedBase(policy, 4, 8)
    disc = Discriminator.from_shared_base(shared)
    base = {p.data_ptr() for p in shared.base_parameters()}
    backbone = getattr(disc.classifier, disc.classifier.base_model_prefix)
    assert {p.data_ptr() for n, p in backbone.named_parameters() if "lora_" not in n} <= base
    assert disc.reference is shared.lm  # ℓ_t from the same weights, adapters off
    assert {p.data_ptr() for n, p in disc.reference.named_parameters() if "lora_" not in n} == base
    trained = {id(p) for _, p in disc.named_trainable()}
    assert trained == {id(p) for p in shared.parameters(DISC_ADAPTER)} | {id(p) for p in disc.head_parameters()}
    assert not trained & {id(p) for p in shared.parameters("default")}  # never the policy's adapter


def test_same_scores_likelihoods_and_gradients_as_separate_models():
    policy, tokenizer = lora_policy()
    shared, on_shared, separate = both_ways(policy)
    on_shared.eval(), separate.eval()  # the head's dropout off: the two paths draw no random masks
    batch = traces(tokenizer)
    s1, ell1 = on_shared.terms(batch.input_ids, batch.attention_mask, batch.response_mask)
    s2, ell2 = separate.terms(batch.input_ids, batch.attention_mask, batch.response_mask)
    assert torch.allclose(ell1, ell2, atol=1e-5) and ell1.abs().sum() > 0
    assert torch.allclose(s1, s2, atol=1e-5)
    # ℓ_t is the base's, not the policy's: the policy's own log-probs differ (its adapter moved)
    with torch.no_grad():
        logits = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    own = torch.log_softmax(logits[0, :-1], -1).gather(1, batch.input_ids[0, 1:, None]).squeeze(1)
    mask = batch.response_mask[0, 1:]
    assert not torch.allclose(own[mask], ell1[0, 1:][mask], atol=1e-3)

    loss = lambda d: bce_loss(d(batch.input_ids, batch.attention_mask, batch.response_mask),  # noqa: E731
                              batch.response_mask, torch.tensor([True, False]), 0.1)  # fmt: skip
    loss(on_shared).backward()
    loss(separate).backward()
    ours = {suffix(n): p.grad for n, p in shared.policy.named_parameters() if f".{DISC_ADAPTER}." in n}
    theirs = {suffix(n): p.grad for n, p in separate.classifier.named_parameters() if "lora_" in n}
    for key in ours:
        assert torch.allclose(ours[key], theirs[key], atol=1e-5), key
    for a, b in zip(on_shared.head_parameters(), separate.head_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)
    assert all(p.grad is None for p in shared.parameters("default"))  # the policy's adapter took no gradient
    assert all(p.requires_grad for p in shared.parameters("default") + shared.parameters(DISC_ADAPTER))


def test_likelihoods_are_computed_once_per_trace():
    policy, tokenizer = lora_policy()
    _, disc, _ = both_ways(policy)
    batch = traces(tokenizer)
    first = disc.terms(batch.input_ids, batch.attention_mask, batch.response_mask)[1]
    again = disc.terms(batch.input_ids[[1, 0]], batch.attention_mask[[1, 0]], batch.response_mask[[1, 0]])[1]
    assert disc._ell_cache.misses == 2 and disc._ell_cache.hits == 2
    assert torch.equal(first[[1, 0]], again)


def test_saved_shared_discriminator_is_standard_and_scores_the_same(tmp_path):
    policy, tokenizer = lora_policy()
    _, disc, _ = both_ways(policy)
    disc.save_pretrained(tmp_path, tokenizer)
    loaded = Discriminator.from_pretrained(tmp_path).eval()
    disc.eval()
    assert loaded.shared is None and loaded.reference is not None
    batch = traces(tokenizer)
    with torch.no_grad():
        expected = disc(batch.input_ids, batch.attention_mask, batch.response_mask)
        assert torch.allclose(loaded(batch.input_ids, batch.attention_mask, batch.response_mask), expected, atol=1e-5)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["LlamaForTokenClassification"]


@pytest.mark.parametrize("beta", ["0.0", "0.04"])  # with KL, TRL's reference pass switches the adapters off too
def test_airl_with_lora_on_both_sides_shares_the_base_end_to_end(tmp_path, beta):
    lora = ["--lora_r", "4", "--disc_lora_r", "4", "--learning_rate", "1e-2", "--beta", beta]
    run = rl_run(20, 8, 4, 16, "--disc_warmup_steps", "1", "--max_steps", "2", "--save_steps", "100", *lora,
                 "--output_dir", str(tmp_path))  # fmt: skip
    assert main(["airl", *run]) == 0
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any("disc/acc_expert" in r for r in rows)
    disc = Discriminator.from_pretrained(tmp_path / "discriminator")
    assert disc.uses_likelihood and (tmp_path / "discriminator" / "reference" / "config.json").is_file()
    # the discriminator's adapter trained (B_D A_D != 0): its merged backbone left the base it shares
    backbone, base = disc.classifier.model.state_dict(), disc.reference.model.state_dict()
    assert any(not torch.equal(backbone[k], base[k]) for k in backbone)


def test_a_shared_base_needs_a_lora_policy():
    model, _ = build_tiny(TINY, seed=0)
    with pytest.raises(ValueError, match="needs a LoRA policy"):
        SharedBase(model, 4, 8)


def test_the_saved_policy_holds_its_own_adapter_not_the_discriminators(tmp_path):
    from transformers import AutoModelForCausalLM

    from rairl.trainers.common import save_final

    policy, tokenizer = lora_policy()
    shared, _, _ = both_ways(policy)  # the discriminator's adapter set away from zero
    expected = shared.merged("default").state_dict()
    save_final(policy, tokenizer, tmp_path)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path).state_dict()
    assert all(torch.allclose(saved[k], expected[k], atol=1e-6) for k in expected)
