"""rairl.discriminator on a 1-layer, 32-wide Llama: causality, checkpoints, likelihood features (the losses:
test_discriminator_losses.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForTokenClassification

from rairl.discriminator import Discriminator, token_logprobs
from rairl.trainers.discriminator_update import DiscriminatorArgs


@pytest.mark.parametrize("likelihood", [False, True])
def test_a_later_token_never_changes_an_earlier_score(tiny_policy, likelihood, make_disc, random_traces):
    disc = make_disc(tiny_policy, likelihood)
    batch = random_traces(len(tiny_policy[1]))
    with torch.no_grad():
        before = disc(batch.input_ids, batch.attention_mask, batch.response_mask)
        ids = batch.input_ids.clone()
        ids[0, 6] = (ids[0, 6] + 1) % len(tiny_policy[1])
        after = disc(ids, batch.attention_mask, batch.response_mask)
    assert torch.allclose(before[:, :6], after[:, :6], atol=1e-6)
    assert not torch.allclose(before[0, 6:], after[0, 6:])  # the changed position and what follows do move
    assert torch.equal(before[1], after[1])


def test_plain_discriminator_loads_alone_as_a_token_classifier(tiny_policy, tmp_path, make_disc, random_traces):
    disc = make_disc(tiny_policy, likelihood=False)
    disc.save_pretrained(tmp_path, tiny_policy[1])
    alone = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    batch = random_traces(len(tiny_policy[1]))
    with torch.no_grad():
        expected = disc(batch.input_ids, batch.attention_mask)
        logits = alone(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    assert logits.shape == (2, 10, 1)
    assert torch.allclose(logits.squeeze(-1), expected, atol=1e-6)
    assert not Discriminator.from_pretrained(tmp_path).uses_likelihood


def test_likelihood_discriminator_round_trips_through_from_pretrained(tiny_policy, tmp_path, make_disc, random_traces):
    disc = make_disc(tiny_policy, likelihood=True, temperature=2.0)
    disc.save_pretrained(tmp_path, tiny_policy[1])
    loaded = Discriminator.from_pretrained(tmp_path).eval()
    assert loaded.uses_likelihood and loaded.temperature == 2.0
    assert loaded.likelihood.tolist() == pytest.approx([0.3, 0.7])
    batch = random_traces(len(tiny_policy[1]))
    with torch.no_grad():
        a = disc(batch.input_ids, batch.attention_mask, batch.response_mask)
        b = loaded(batch.input_ids, batch.attention_mask, batch.response_mask)
    assert torch.equal(a, b)
    # the saved folder still loads on its own, computing w·h + b only
    alone = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        plain = alone(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.squeeze(-1)
    assert not torch.allclose(plain, a)


def test_likelihood_variant_needs_the_response_mask(tiny_policy, make_disc, random_traces):
    disc = make_disc(tiny_policy, likelihood=True)
    batch = random_traces(len(tiny_policy[1]))
    with pytest.raises(ValueError, match="needs response_mask"):
        disc(batch.input_ids, batch.attention_mask)


def test_token_logprobs_are_the_causal_lm_log_probabilities(tiny_policy, make_disc, random_traces):
    model, tokenizer = tiny_policy
    disc = make_disc(tiny_policy, likelihood=True)
    batch = random_traces(len(tokenizer))
    with torch.no_grad():
        logp = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.log_softmax(-1)
        h = disc.classifier.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        ell = token_logprobs(disc.lm_head, h, batch.input_ids, batch.response_mask)
    expected = torch.zeros(2, 10)
    for b in range(2):
        for t in batch.response_mask[b].nonzero().squeeze(1).tolist():
            expected[b, t] = logp[b, t - 1, batch.input_ids[b, t]]
    assert torch.allclose(ell, expected, atol=1e-5)
    assert (ell[~batch.response_mask] == 0).all()

    # with w = 0, b = 0 the score is a_1·ℓ_t + a_2·min_{k<=t} ℓ_k
    torch.nn.init.zeros_(disc.classifier.score.weight)
    torch.nn.init.zeros_(disc.classifier.score.bias)
    disc.likelihood.data = torch.tensor([1.0, 0.0])
    with torch.no_grad():
        assert torch.allclose(disc(batch.input_ids, batch.attention_mask, batch.response_mask), expected, atol=1e-5)
        disc.likelihood.data = torch.tensor([0.0, 1.0])
        running = disc(batch.input_ids, batch.attention_mask, batch.response_mask)
    assert torch.allclose(running, torch.cummin(expected, dim=1).values, atol=1e-5)
    assert running[0, 9] == pytest.approx(expected[0, 4:].min().item(), abs=1e-5)


def test_rewards_are_scores_over_the_temperature(tiny_policy, make_disc):
    disc = make_disc(tiny_policy, likelihood=False, temperature=4.0)
    assert disc.rewards(torch.tensor([[2.0, -8.0]])).tolist() == [[0.5, -2.0]]


def test_a_lora_wrapped_policy_gives_the_same_discriminator_as_its_base(tiny_policy, random_traces):
    """With LoRA the backbone starts from the frozen base weights (the adapters are zero at initialisation)."""
    import copy

    from rairl.models.factory import add_lora

    wrapped = add_lora(copy.deepcopy(tiny_policy[0]), r=4, alpha=8)
    batch = random_traces(len(tiny_policy[1]))
    torch.manual_seed(1)
    from_base = Discriminator.from_causal_lm(tiny_policy[0], likelihood=True).eval()
    torch.manual_seed(1)
    from_lora = Discriminator.from_causal_lm(wrapped, likelihood=True).eval()
    with torch.no_grad():
        expected = from_base(batch.input_ids, batch.attention_mask, batch.response_mask)
        got = from_lora(batch.input_ids, batch.attention_mask, batch.response_mask)
    assert torch.allclose(expected, got, atol=1e-6)


def test_reference_likelihood_stays_the_initial_lms_while_the_backbone_trains(tiny_policy, tmp_path, random_traces):
    from rairl.discriminator import lm_logprobs

    disc = Discriminator.from_causal_lm(tiny_policy[0], True, likelihood_from="reference", head_init="zero")
    batch = random_traces(len(tiny_policy[1]))
    args = (batch.input_ids, batch.attention_mask, batch.response_mask)
    with torch.no_grad():
        base_ell = lm_logprobs(tiny_policy[0], *args)
        s, ell = disc.terms(*args)
    assert torch.equal(s, torch.zeros_like(s))  # zero head: D = 1/2 everywhere at the start
    torch.testing.assert_close(ell, base_ell)
    assert not any(p is q for p in disc.parameters() for q in disc.reference.parameters())
    optimizer = torch.optim.SGD(disc.parameters(), lr=1.0)
    for _ in range(2):  # the head moves first, then the backbone behind it
        optimizer.zero_grad()
        disc(*args).sum().neg().backward()
        optimizer.step()
    disc.eval()
    with torch.no_grad():
        torch.testing.assert_close(disc.terms(*args)[1], base_ell)  # ℓ did not drift
        assert not torch.allclose(
            disc.classifier.model.layers[0].mlp.up_proj.weight, tiny_policy[0].model.layers[0].mlp.up_proj.weight
        )
        before = disc(*args)
    disc.save_pretrained(tmp_path, tiny_policy[1])
    loaded = Discriminator.from_pretrained(tmp_path).eval()
    assert loaded.likelihood_from == "reference"
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args), before)


def test_head_init_and_source_are_checked(tiny_policy):
    with pytest.raises(ValueError, match="likelihood_from must be one of"):
        Discriminator.from_causal_lm(tiny_policy[0], True, likelihood_from="policy")
    with pytest.raises(ValueError, match="disc_head_init must be one of"):
        DiscriminatorArgs(disc_head_init="random")


def test_a_lora_discriminator_trains_adapters_and_head_and_saves_merged_weights_that_load_alone(
    tiny_policy, tmp_path, random_traces
):
    disc = Discriminator.from_causal_lm(tiny_policy[0], True, likelihood_from="reference", head_init="zero")
    frozen = {k: v.clone() for k, v in disc.classifier.model.state_dict().items()}
    disc.add_lora(4, 8)
    trainable = {k for k, p in disc.named_parameters() if p.requires_grad}
    assert disc.has_lora and "likelihood" in trainable and "classifier.score.weight" in trainable
    assert all("lora_" in k for k in trainable if k != "likelihood" and not k.startswith("classifier.score."))
    batch = random_traces(len(tiny_policy[1]))
    opt = torch.optim.SGD([p for p in disc.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):  # lora_B starts at zero: two steps move the adapters' product B·A off zero
        opt.zero_grad()
        disc(batch.input_ids, batch.attention_mask, batch.response_mask).mean().neg().backward()
        opt.step()
    base = disc.classifier.model.get_base_model().state_dict()
    assert all(torch.equal(base[k], v) for k, v in frozen.items() if k in base)  # the backbone did not move
    disc.eval().save_pretrained(tmp_path, tiny_policy[1])
    alone = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()  # merged: no peft needed
    reloaded = Discriminator.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        s = disc(batch.input_ids, batch.attention_mask, batch.response_mask)
        assert torch.allclose(reloaded(batch.input_ids, batch.attention_mask, batch.response_mask), s, atol=1e-5)
        h = disc.classifier.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        wh_b = disc.classifier.score(h).squeeze(-1)
        logits = alone(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.squeeze(-1)
    assert torch.allclose(logits, wh_b, atol=1e-5) and not torch.allclose(wh_b, torch.zeros_like(wh_b))
    assert not reloaded.has_lora


def test_token_logprobs_in_chunks_equal_one_log_softmax(monkeypatch):
    import rairl.discriminator as discriminator

    torch.manual_seed(0)
    head = torch.nn.Linear(8, 11)
    h = torch.randn(3, 7, 8, requires_grad=True)
    ids = torch.randint(0, 11, (3, 7))
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[:, 2:] = True
    mask[2, 5:] = False
    rows, cols = mask.nonzero(as_tuple=True)
    expected = torch.zeros(3, 7)
    expected[rows, cols] = torch.log_softmax(head(h[rows, cols - 1]), -1).gather(1, ids[rows, cols, None]).squeeze(1)
    monkeypatch.setattr(discriminator, "LOGIT_CHUNK", 4)  # 13 positions: chunks of 4, 4, 4, 1
    got = discriminator.token_logprobs(head, h, ids, mask)
    assert torch.allclose(got, expected, atol=1e-6)
    got.sum().backward()  # gradients flow through every chunk: each predicting position gets one
    assert h.grad[rows, cols - 1].abs().sum(dim=1).gt(0).all()
