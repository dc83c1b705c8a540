r"""The discriminator's losses (DESIGN §1.2), chosen by name (`--disc_loss`) from `DISC_LOSSES`.

On a batch of traces b with scores s_{bt} (`rairl.discriminator`), the granularity mask m_{bt} selecting the
labelled positions, and per-sequence means \bar{x}_b = \sum_t m_{bt} x_{bt} / \sum_t m_{bt}:

bce      Binary cross-entropy with label smoothing \epsilon, targets y_b = 1 - \epsilon/2 for experts (E) and
         \epsilon/2 for negatives (N: the policy's samples, perturbed experts, replay); the two classes weigh
         1/2 each whatever the batch holds, and a perturbed expert weighs w = `disc_perturbed_weight` among the
         negatives (a policy sample: 1):

             l_b = \overline{BCE(s_b, y_b)}_b
             L   = 1/2 E_{b \in E}[l_b] + 1/2 \sum_{b \in N} w_b l_b / \sum_{b \in N} w_b

nnpu     Non-negative positive-unlabeled risk (Kiryo et al., 2017), as PURL applies it to GAIL: the policy's
         samples and the replay are *unlabeled* (U: a share \pi = `disc_pu_prior` of them is as good as an
         expert's); only the perturbed experts are labelled negatives (N). With l^\pm_b the per-sequence BCE
         against 1 - \epsilon/2 and \epsilon/2:

             R = \pi E_E[l^+] + \max(0, E_U[l^-] - \pi E_E[l^-])
             L = mean(R, E_N[l^-])                        (R alone when the batch has no labelled negative)

wgan_gp  A WGAN critic, never without Lipschitz control: a gradient penalty of weight \lambda = `disc_gp_weight`
         on the input embeddings e (tokens are discrete: the traces' own embeddings, not interpolates):

             L = E_N[\bar{s}] - E_E[\bar{s}] + \lambda E[(\lVert \nabla_e \bar{s} \rVert - 1)^2]

Accuracy, whatever the loss: a trace is called expert when D > 1/2 (s > 0) at its last labelled position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from rairl.discriminator import Discriminator
from rairl.registry import Registry
from rairl.traces import TraceBatch


def last_labelled(values: torch.Tensor, label_mask: torch.Tensor) -> torch.Tensor:
    """Each row's value at its last labelled position. (B, T) -> (B,)."""
    assert values.shape == label_mask.shape, (values.shape, label_mask.shape)
    cols = torch.arange(values.shape[1], device=values.device).expand_as(label_mask)
    last = torch.where(label_mask, cols, -1).max(dim=1).values.clamp_min(0)
    return values.gather(1, last[:, None]).squeeze(1)


def per_sequence_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over each row's masked positions. (B, T) -> (B,)."""
    m = mask.to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def class_balanced(per_seq: torch.Tensor, is_expert: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """½·mean over experts + ½·(weighted) mean over negatives (a class absent from the batch drops out).
    `weights` (B,): each negative's weight in its class mean (default 1 each)."""

    def mean(sel: torch.Tensor) -> torch.Tensor:
        if weights is None:
            return per_seq[sel].mean()
        w = weights[sel].to(per_seq.dtype)
        return (per_seq[sel] * w).sum() / w.sum()

    return torch.stack([mean(sel) for sel in (is_expert, ~is_expert) if sel.any()]).mean()


def bce_loss(
    scores: torch.Tensor,
    label_mask: torch.Tensor,
    is_expert: torch.Tensor,
    smoothing: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class-balanced BCE with label smoothing on labelled positions. scores, label_mask: (B, T); is_expert: (B,);
    weights (B,): each negative's weight within the negatives' mean (`class_balanced`)."""
    if scores.shape != label_mask.shape or is_expert.shape != scores.shape[:1]:
        raise ValueError(
            f"shapes: scores {tuple(scores.shape)}, mask {tuple(label_mask.shape)}, labels {tuple(is_expert.shape)}"
        )
    target = torch.where(is_expert, 1.0 - smoothing / 2, smoothing / 2).to(scores.dtype)[:, None].expand_as(scores)
    bce = F.binary_cross_entropy_with_logits(scores, target, reduction="none")
    return class_balanced(per_sequence_mean(bce, label_mask), is_expert, weights)


def nnpu_loss(
    scores: torch.Tensor,
    label_mask: torch.Tensor,
    is_expert: torch.Tensor,
    unlabeled: torch.Tensor,
    prior: float,
    smoothing: float,
) -> torch.Tensor:
    """Non-negative PU risk (module docstring, `nnpu`). scores, label_mask: (B, T); is_expert, unlabeled: (B,) bool,
    `unlabeled` False on experts; rows neither expert nor unlabeled are labelled negatives."""
    pos = torch.full_like(scores, 1.0 - smoothing / 2)
    l_pos = per_sequence_mean(F.binary_cross_entropy_with_logits(scores, pos, reduction="none"), label_mask)
    l_neg = per_sequence_mean(F.binary_cross_entropy_with_logits(scores, 1.0 - pos, reduction="none"), label_mask)
    risk = prior * l_pos[is_expert].mean()
    if unlabeled.any():
        risk = risk + torch.clamp(l_neg[unlabeled].mean() - prior * l_neg[is_expert].mean(), min=0.0)
    negatives = ~is_expert & ~unlabeled
    return torch.stack([risk, l_neg[negatives].mean()]).mean() if negatives.any() else risk


def wgan_loss(scores: torch.Tensor, label_mask: torch.Tensor, is_expert: torch.Tensor) -> torch.Tensor:
    """Critic loss E_neg[s] - E_expert[s] (per-sequence means over labelled positions)."""
    per_seq = per_sequence_mean(scores, label_mask)
    return per_seq[~is_expert].mean() - per_seq[is_expert].mean()


def gradient_penalty(disc: Discriminator, batch: TraceBatch, label_mask: torch.Tensor) -> torch.Tensor:
    """E[(‖∇_e s̄‖ - 1)^2] with e the input embeddings and s̄ the per-sequence mean score.

    Tokens are discrete, so the penalty is taken at the traces' own embeddings rather than at interpolates.
    The penalty needs a double backward, which PyTorch's fused attention kernels lack: attention runs on the
    math kernel here.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    base = getattr(disc.classifier, disc.classifier.base_model_prefix)
    embeds = base.get_input_embeddings()(batch.input_ids).detach().requires_grad_(True)
    with sdpa_kernel(SDPBackend.MATH):
        h = base(inputs_embeds=embeds, attention_mask=batch.attention_mask).last_hidden_state
    s = disc.classifier.score(h).squeeze(-1).float()
    grad = torch.autograd.grad(per_sequence_mean(s, label_mask).sum(), embeds, create_graph=True)[0]
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def accuracy(scores: torch.Tensor, label_mask: torch.Tensor, is_expert: torch.Tensor) -> torch.Tensor:
    """Per-trace correctness of the call D > 1/2 at the last labelled position. -> (B,) bool."""
    return (last_labelled(scores, label_mask) > 0) == is_expert


# ---------------------------------------------------------------- the losses by name
@dataclass(frozen=True)
class LossInputs:
    """What one discriminator step hands its loss. `scores`, `label_mask`: (B, T); `is_expert`: (B,) bool;
    `kinds[b]`: 'expert', 'policy', 'perturbed' or 'replay'."""

    disc: Discriminator  # unwrapped (no DDP): the gradient penalty runs its backbone directly
    batch: TraceBatch
    scores: torch.Tensor
    label_mask: torch.Tensor
    is_expert: torch.Tensor
    kinds: list[str]


class LossOptions(Protocol):
    """The settings the losses read (the `--disc_*` options of `rairl.trainers.discriminator_update`)."""

    disc_smoothing: float
    disc_pu_prior: float
    disc_perturbed_weight: float
    disc_gp_weight: float


DiscriminatorLoss = Callable[[LossInputs, LossOptions], torch.Tensor]
DISC_LOSSES: Registry[DiscriminatorLoss] = Registry("discriminator loss")


@DISC_LOSSES.register("bce")
def _bce(x: LossInputs, options: LossOptions) -> torch.Tensor:
    weights = None
    if options.disc_perturbed_weight != 1.0:
        weights = torch.tensor([options.disc_perturbed_weight if k == "perturbed" else 1.0 for k in x.kinds])
    return bce_loss(x.scores, x.label_mask, x.is_expert, options.disc_smoothing, weights)


@DISC_LOSSES.register("nnpu")
def _nnpu(x: LossInputs, options: LossOptions) -> torch.Tensor:
    unlabeled = torch.tensor([k in ("policy", "replay") for k in x.kinds], device=x.is_expert.device)
    return nnpu_loss(x.scores, x.label_mask, x.is_expert, unlabeled, options.disc_pu_prior, options.disc_smoothing)


@DISC_LOSSES.register("wgan_gp")
def _wgan_gp(x: LossInputs, options: LossOptions) -> torch.Tensor:
    return wgan_loss(x.scores, x.label_mask, x.is_expert) + options.disc_gp_weight * gradient_penalty(
        x.disc, x.batch, x.label_mask
    )
