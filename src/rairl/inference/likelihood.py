r"""The base policy's likelihood: the baseline that reranking and localisation compare the learned reward with
(DESIGN §1.1, §1.6).

    ℓ_t = log π(y_t | x, y_{<t})        on every response token (EOS appended, as a finished sample ends with it)

Trace scores (any aggregation of `rairl.scores`; the baselines are `mean`, the per-token average,
and `min`, the least likely token). Step scores use `step_reduce="min"`: a step is as likely as its least likely
token, so the predicted first wrong step is the first step holding a token with ℓ_t < log p_min.

Only response positions go through the LM head (`discriminator.token_logprobs`), so a large vocabulary costs
(response tokens × V) memory, not (B × T × V). The LM head is applied to the decoder's last hidden state as
Llama/Qwen-style models do (a model that post-processes its logits, e.g. soft-capping, is read without it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from rairl.discriminator import lm_logprobs
from rairl.reward_settings import RewardSettings
from rairl.tasks.base import line_spans
from rairl.trace_scorer import TraceScorer, forward_sorted
from rairl.traces import Span, TraceBatch

DEFAULT_MIN_PROB = 0.1  # a token the policy itself gives less than 10% marks its step as suspect
DEFAULT_LOGPROB_THRESHOLD = math.log(DEFAULT_MIN_PROB)


class LikelihoodScorer(TraceScorer):
    """Token values ℓ_t of a causal LM (the base policy), with the scoring API of `TraceScorer`; a step is as
    likely as its least likely token (`step_reduce = "min"`)."""

    step_reduce = "min"

    def __init__(
        self,
        model,
        tokenizer,
        *,
        step_spans: Callable[[str], list[Span]] = line_spans,
        batch_size: int = 16,
        max_length: int | None = None,
        aggregate_discount: float = RewardSettings.aggregate_discount,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.step_spans, self.batch_size, self.max_length = step_spans, batch_size, max_length
        self.aggregate_discount = aggregate_discount

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", **kwargs) -> LikelihoodScorer:
        """A saved causal LM directory or Hugging Face id (safetensors only), with its tokenizer."""
        from transformers import AutoModelForCausalLM

        from rairl.models import load_tokenizer
        from rairl.models.factory import check_model_folder
        from rairl.models.gguf import resolve_model

        path = resolve_model(str(path))
        check_model_folder(path, "policy")
        model = AutoModelForCausalLM.from_pretrained(str(path), use_safetensors=True).to(device)
        return cls(model, load_tokenizer(str(path)), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def token_values(self, batch: TraceBatch) -> torch.Tensor:
        """ℓ_t (B, T) on response tokens (0 on the first token of a row without prompt, and outside responses)."""

        def logprobs(b: TraceBatch) -> torch.Tensor:
            return lm_logprobs(self.model, b.input_ids, b.attention_mask, b.response_mask)  # (b, t)

        was_training = self.model.training
        self.model.eval()  # no dropout while scoring; the caller's mode comes back after
        try:
            return forward_sorted(logprobs, batch, self.batch_size, self.device)
        finally:
            self.model.train(was_training)
