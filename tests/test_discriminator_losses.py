"""rairl.discriminator_losses: each loss by hand, the gradient penalty on a 1-layer Llama, the registry."""

from __future__ import annotations

import math

import pytest
import torch

from rairl.config import parse_config
from rairl.discriminator_losses import (
    DISC_LOSSES,
    LossInputs,
    accuracy,
    bce_loss,
    gradient_penalty,
    last_labelled,
    nnpu_loss,
    wgan_loss,
)
from rairl.trainers.discriminator_update import DiscriminatorArgs


def bce(s: float, y: float) -> float:
    return -(y * math.log(1 / (1 + math.exp(-s))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-s))))


def test_bce_loss_by_hand_with_smoothing_and_class_balance():
    scores = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]])
    mask = torch.tensor([[True, False, True], [False, True, True]])
    is_expert = torch.tensor([True, False])
    # ε = 0.2: experts aim at 0.9, negatives at 0.1; each row is averaged over its labelled positions
    expert = (bce(0.5, 0.9) + bce(2.0, 0.9)) / 2
    negative = (bce(0.0, 0.1) + bce(-0.5, 0.1)) / 2
    loss = bce_loss(scores, mask, is_expert, smoothing=0.2)
    assert loss.item() == pytest.approx((expert + negative) / 2, rel=1e-6)

    # balance is by class, not by batch shape: three copies of the negative leave the loss unchanged
    rows = [0, 1, 1, 1]
    more = bce_loss(scores[rows], mask[rows], is_expert[rows], smoothing=0.2)
    assert more.item() == pytest.approx(loss.item(), rel=1e-6)
    # ... whereas a plain mean over rows would weigh the negatives 3:1
    assert (expert + 3 * negative) / 4 != pytest.approx(loss.item(), rel=1e-3)


def test_bce_loss_weighs_perturbed_negatives_within_their_class():
    scores = torch.tensor([[2.0], [-1.0], [0.5]])
    mask = torch.ones(3, 1, dtype=torch.bool)
    is_expert = torch.tensor([True, False, False])
    # the second negative (a perturbed expert, say) weighs 3: negatives' mean = (1·l_1 + 3·l_2) / 4
    expected = (bce(2.0, 0.95) + (bce(-1.0, 0.05) + 3 * bce(0.5, 0.05)) / 4) / 2
    loss = bce_loss(scores, mask, is_expert, smoothing=0.1, weights=torch.tensor([1.0, 1.0, 3.0]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    unweighted = bce_loss(scores, mask, is_expert, smoothing=0.1)
    assert unweighted.item() == pytest.approx((bce(2.0, 0.95) + (bce(-1.0, 0.05) + bce(0.5, 0.05)) / 2) / 2, rel=1e-6)


def test_bce_loss_checks_shapes():
    with pytest.raises(ValueError, match="shapes"):
        bce_loss(torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool), torch.tensor([True, False]), 0.1)


def test_wgan_loss_by_hand_and_gradient_penalty_is_finite_and_differentiable(tiny_policy, make_disc, random_traces):
    scores = torch.tensor([[1.0, 3.0], [-2.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    assert wgan_loss(scores, mask, torch.tensor([True, False])).item() == pytest.approx(-2.0 - 2.0)

    disc = make_disc(tiny_policy, likelihood=True).train()
    batch = random_traces(len(tiny_policy[1]))
    is_expert = torch.tensor([True, False])
    s = disc(batch.input_ids, batch.attention_mask, batch.response_mask)
    gp = gradient_penalty(disc, batch, batch.response_mask)
    loss = wgan_loss(s, batch.response_mask, is_expert) + 10.0 * gp
    assert torch.isfinite(gp) and gp.item() >= 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in disc.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert disc.classifier.model.embed_tokens.weight.grad.abs().sum() > 0  # the penalty reaches the embeddings


def test_accuracy_reads_the_last_labelled_position():
    scores = torch.tensor([[-1.0, 2.0, -5.0], [3.0, -1.0, 9.0], [0.5, -0.5, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, False], [False, False, True]])
    is_expert = torch.tensor([True, False, True])
    assert last_labelled(scores, mask).tolist() == [2.0, -1.0, 0.0]
    # expert scored 2 > 0: right; negative scored -1 < 0: right; expert scored 0 (D = 1/2, not > 1/2): wrong
    assert accuracy(scores, mask, is_expert).tolist() == [True, True, False]


def test_nnpu_loss_by_hand():
    # one labelled position per row; rows: expert (s=2), policy (s=0), policy (s=1), perturbed (s=-1); ε = 0
    scores = torch.tensor([[2.0], [0.0], [1.0], [-1.0]])
    mask = torch.ones(4, 1, dtype=torch.bool)
    is_expert = torch.tensor([True, False, False, False])
    unlabeled = torch.tensor([False, True, True, False])
    sp = torch.nn.functional.softplus
    l_pos, l_neg = sp(-scores).squeeze(1), sp(scores).squeeze(1)  # BCE with targets 1 and 0
    pi = 0.3
    risk = pi * l_pos[0] + torch.clamp((l_neg[1] + l_neg[2]) / 2 - pi * l_neg[0], min=0)
    expected = (risk + l_neg[3]) / 2
    torch.testing.assert_close(nnpu_loss(scores, mask, is_expert, unlabeled, pi, 0.0), expected)
    # the max(0, ·) keeps the unlabeled risk from going negative when the experts look very negative
    clamped = nnpu_loss(torch.tensor([[-5.0], [-6.0]]), mask[:2], is_expert[:2], unlabeled[:2], 0.9, 0.0)
    torch.testing.assert_close(clamped, 0.9 * sp(torch.tensor(5.0)))


# --- the registry ------------------------------------------------------------------------------------------------


def test_the_registry_holds_the_three_losses():
    assert sorted(DISC_LOSSES) == ["bce", "nnpu", "wgan_gp"]


def test_an_unknown_disc_loss_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match=r"unknown discriminator loss 'wgan'; known: \['bce', 'nnpu', 'wgan_gp'\]"):
        parse_config(DiscriminatorArgs, ["--disc_loss", "wgan"])
    with pytest.raises(ValueError, match="Did you mean 'nnpu'"):
        DiscriminatorArgs(disc_loss="nnpu_")
    with pytest.raises(ValueError, match="disc_smoothing"):
        DiscriminatorArgs(disc_smoothing=1.0)


def test_each_registered_loss_is_its_equation_on_the_batch_kinds(tiny_policy, make_disc, random_traces):
    """The registry's entries read the options and the rows' kinds, and give exactly the loss functions' values."""
    disc = make_disc(tiny_policy, likelihood=False)
    batch = random_traces(len(tiny_policy[1]), seed=1)
    mask = batch.response_mask
    rows = [0, 1, 1, 0]  # expert, policy sample, perturbed expert, replayed sample
    batch = type(batch)(
        batch.input_ids[rows], batch.attention_mask[rows], mask[rows], [batch.step_ends[r] for r in rows]
    )
    mask, kinds = mask[rows], ["expert", "policy", "perturbed", "replay"]
    is_expert = torch.tensor([True, False, False, False])
    options = DiscriminatorArgs(disc_perturbed_weight=3.0, disc_smoothing=0.2, disc_pu_prior=0.4, disc_gp_weight=5.0)
    scores = disc(batch.input_ids, batch.attention_mask)
    x = LossInputs(disc, batch, scores, mask, is_expert, kinds)

    weights = torch.tensor([1.0, 1.0, 3.0, 1.0])
    assert torch.equal(DISC_LOSSES["bce"](x, options), bce_loss(scores, mask, is_expert, 0.2, weights))
    unlabeled = torch.tensor([False, True, False, True])
    assert torch.equal(DISC_LOSSES["nnpu"](x, options), nnpu_loss(scores, mask, is_expert, unlabeled, 0.4, 0.2))
    expected = wgan_loss(scores, mask, is_expert) + 5.0 * gradient_penalty(disc, batch, mask)
    assert torch.equal(DISC_LOSSES["wgan_gp"](x, options), expected)
