"""The learned reward as an object: a discriminator, its tokenizer and a step splitter, with no training code.

Token rewards follow DESIGN §1.3: values v_t = s_t / temperature on the positions of the granularity mask m_t,
backfilled to every response token, r_t = v_{t'} with t' = min{k >= t : m_k = 1}, then clipped to [-β, β]; the
scoring API reads r_t or f_t = backfill(v)_t + ℓ_t by the score form (`rairl.reward_settings`, which holds every
setting of the reward, saved with it).
The scoring API (DESIGN §2.1: token, step and trace views, `score_parts`, `score_ids`, `as_reward_func`) is
`rairl.trace_scorer.TraceScorer`'s; for the `dense` granularity r_t = v_t is the reward of the prefix ending at
token t. `score_parts` also gives the reward's learned part (f_t − ℓ_t), from the same forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from rairl.discriminator import Discriminator
from rairl.reward_settings import RewardSettings, token_rewards
from rairl.rewards.granularity import granularity_mask
from rairl.tasks.base import line_spans
from rairl.trace_scorer import TraceScorer, forward_sorted
from rairl.traces import Span, TraceBatch, encode_texts


class RewardModel(TraceScorer):
    """The learned reward: a discriminator, its tokenizer, a step splitter and its `RewardSettings`. Token values
    are the backfilled, clipped rewards r_t (`token_rewards`) or f_t, by the settings' score form."""

    def __init__(
        self,
        discriminator: Discriminator,
        tokenizer,
        settings: RewardSettings | None = None,
        *,
        step_spans: Callable[[str], list[Span]] = line_spans,
        batch_size: int = 32,
    ):
        self.discriminator = discriminator
        self.tokenizer = tokenizer
        self.settings = (settings or RewardSettings()).for_discriminator(discriminator.uses_likelihood)
        self.step_spans = step_spans
        self.batch_size = batch_size

    # ---------------------------------------------------------------- checkpoints
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        step_spans: Callable[[str], list[Span]] = line_spans,
        batch_size: int = 32,
        **overrides,
    ) -> RewardModel:
        """A saved discriminator directory (with its tokenizer) and the settings saved with it
        (`rairl_reward.json`), each replaced by an override that is not None (`RewardSettings.override`)."""
        from rairl.models import load_tokenizer

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"reward model {path}: no such directory (expected a saved discriminator)")
        settings = RewardSettings.load(path).override(**overrides)
        disc, tokenizer = Discriminator.from_pretrained(path), load_tokenizer(str(path))
        try:
            return cls(disc, tokenizer, settings, step_spans=step_spans, batch_size=batch_size)
        except ValueError as err:
            raise ValueError(f"reward model {path}: {err}") from None

    def save_pretrained(self, path: str | Path) -> None:
        """The discriminator, its tokenizer and its settings; `from_pretrained(path)` restores all."""
        self.discriminator.save_pretrained(path, self.tokenizer)
        self.settings.save(path)

    @property
    def device(self) -> torch.device:
        return next(self.discriminator.parameters()).device

    @property
    def max_length(self) -> int | None:
        return self.settings.max_length

    @property
    def step_reduce(self) -> str:
        return self.settings.step_reduction

    @property
    def aggregate_discount(self) -> float:
        return self.settings.aggregate_discount

    def to(self, device: torch.device | str) -> RewardModel:
        self.discriminator.to(device)
        return self

    # ---------------------------------------------------------------- what the trainers use
    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> TraceBatch:
        spans = [self.step_spans(r) for r in responses]
        return encode_texts(self.tokenizer, prompts, responses, spans, self.max_length)

    def scores(self, batch: TraceBatch) -> torch.Tensor:
        """Discriminator scores s (B, T) on CPU, computed in length-sorted mini-batches."""
        return self._forward(batch, lambda b: self.discriminator(b.input_ids, b.attention_mask, b.response_mask))

    def score_terms(self, batch: TraceBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, ℓ), each (B, T) on CPU, from one forward pass (a likelihood-aware discriminator only)."""

        def both(b: TraceBatch) -> torch.Tensor:
            s, ell = self.discriminator.terms(b.input_ids, b.attention_mask, b.response_mask)
            return torch.stack([s, ell], dim=-1)  # (b, t, 2)

        out = self._forward(batch, both)
        return out[..., 0], out[..., 1]

    def _forward(self, batch: TraceBatch, fn: Callable[[TraceBatch], torch.Tensor]) -> torch.Tensor:
        disc = self.discriminator
        was_training = disc.training
        disc.eval()
        try:
            return forward_sorted(fn, batch, self.batch_size, self.device)
        finally:
            disc.train(was_training)

    def label_mask(self, batch: TraceBatch) -> torch.Tensor:
        return granularity_mask(self.settings.granularity, batch.response_mask, batch.step_ends, self.settings.interval)

    def token_rewards(self, batch: TraceBatch, scores: torch.Tensor | None = None) -> torch.Tensor:
        """r_t (B, T): backfilled, clipped rewards on response tokens, 0 elsewhere (what training uses)."""
        scores = self.scores(batch) if scores is None else scores
        values = self.discriminator.rewards(scores)
        mask, response = self.label_mask(batch).to(values.device), batch.response_mask.to(values.device)
        return token_rewards(values, mask, response, self.settings.clip_beta)

    def token_values(self, batch: TraceBatch) -> torch.Tensor:
        """What the scoring API reads, by the score form: r_t, or f_t = backfill(v)_t + ℓ_t (unclipped)."""
        form = self.settings.form
        s, ell = self.score_terms(batch) if form.needs_likelihood else (self.scores(batch), None)
        v = self.discriminator.rewards(s)
        return form.values(v, ell, self.label_mask(batch), batch.response_mask, self.settings.clip_beta)

    def token_parts(self, batch: TraceBatch) -> dict[str, torch.Tensor]:
        """`token_values` ("value") and its learned part ("learned": the same score form with ℓ_t taken out, f_t − ℓ_t
        = backfill(v)_t; all of r_t for the logit form, which adds no likelihood back), from one forward pass: what
        the reward says beyond the likelihood it adds back (DESIGN §2.6)."""
        form = self.settings.form
        s, ell = self.score_terms(batch) if form.needs_likelihood else (self.scores(batch), None)
        v, mask, clip = self.discriminator.rewards(s), self.label_mask(batch), self.settings.clip_beta
        learned_ell = torch.zeros_like(v) if form.needs_likelihood else None
        return {
            "value": form.values(v, ell, mask, batch.response_mask, clip),
            "learned": form.values(v, learned_ell, mask, batch.response_mask, clip),
        }
