"""The learned reward as an object: a discriminator, its tokenizer and a step splitter, with no training code.

Token rewards follow DESIGN §1.3: values v_t = s_t / temperature on the positions of the granularity mask m_t,
backfilled to every response token, r_t = v_{t'} with t' = min{k >= t : m_k = 1}, then clipped to [-β, β].
Scoring runs without gradient on length-sorted mini-batches (little padding), results in input order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from rairl.discriminator import Discriminator
from rairl.rewards.backfill import backfill, clip
from rairl.rewards.granularity import granularity_mask
from rairl.tasks.base import line_spans
from rairl.traces import Span, TraceBatch, encode_texts


class RewardModel:
    def __init__(
        self,
        discriminator: Discriminator,
        tokenizer,
        *,
        step_spans: Callable[[str], list[Span]] = line_spans,
        granularity: str = "dense",
        interval: int = 8,
        clip_beta: float | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ):
        self.discriminator = discriminator
        self.tokenizer = tokenizer
        self.step_spans = step_spans
        self.granularity, self.interval, self.clip_beta = granularity, interval, clip_beta
        self.batch_size = batch_size
        self.max_length = max_length

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> "RewardModel":
        from rairl.models import load_tokenizer

        return cls(Discriminator.from_pretrained(path), load_tokenizer(str(path)), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.discriminator.parameters()).device

    def encode(self, prompts: Sequence[str], responses: Sequence[str]) -> TraceBatch:
        spans = [self.step_spans(r) for r in responses]
        return encode_texts(self.tokenizer, prompts, responses, spans, self.max_length)

    @torch.no_grad()
    def scores(self, batch: TraceBatch) -> torch.Tensor:
        """Discriminator scores s (B, T) on CPU, computed in length-sorted mini-batches."""
        disc = self.discriminator
        was_training = disc.training
        disc.eval()
        out = torch.zeros(batch.input_ids.shape, dtype=torch.float32)
        lengths = batch.attention_mask.sum(1)
        order = torch.argsort(lengths, descending=True, stable=True).tolist()
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            sub = batch.select(idx).to(self.device)
            s = disc(sub.input_ids, sub.attention_mask, sub.response_mask).float().cpu()
            out[idx, : s.shape[1]] = s
        disc.train(was_training)
        return out

    def label_mask(self, batch: TraceBatch) -> torch.Tensor:
        return granularity_mask(self.granularity, batch.response_mask, batch.step_ends, self.interval)

    def token_rewards(self, batch: TraceBatch, scores: torch.Tensor | None = None) -> torch.Tensor:
        """r_t (B, T): backfilled, clipped rewards on response tokens, 0 elsewhere."""
        scores = self.scores(batch) if scores is None else scores
        values = self.discriminator.rewards(scores)
        rewards = backfill(values, self.label_mask(batch).to(values.device), batch.response_mask.to(values.device))
        return clip(rewards, self.clip_beta) if self.clip_beta else rewards
