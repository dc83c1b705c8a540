"""The scoring API over any per-token value (DESIGN §2.1): `TraceScorer` turns a (B, T) value of packed traces into
three views from one forward pass (`TraceScores`, `rairl.scores`): `score_tokens` the token values, `score_steps`
one value per step (at its last token, or its minimum), `score_trace` one number per trace by an aggregation (mean |
min | last | sum | discounted | answer_span); `score_parts` the same views of every part a scorer tells apart (a
reward model: the reward and its learned part). Texts are tokenised by the scorer's tokenizer, EOS appended as a
finished sample carries it; `score_ids` scores token ids as they are (same tokenizer) or through character offsets
(a policy with another tokenizer: its tokens get the value of the scorer token holding their last character).
`as_reward_func` plugs a scorer into `trl.GRPOTrainer`. Scoring runs without gradient on length-sorted mini-batches
(little padding; rows sharing a prompt together), results in input order. `rairl.reward_model.RewardModel` (the
learned reward) and `rairl.inference.likelihood.LikelihoodScorer` (the policy's log-probs) are its two scorers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rairl.chat import has_template, plain_text
from rairl.prompt_sharing import grouped_order
from rairl.scores import AGGREGATIONS, TraceScores, answer_token_mask, check_names, trace_views
from rairl.traces import Span, TraceBatch, encode_ids, encode_texts, project_values, token_offsets

PROGRESS_MIN_BATCHES = 8  # scoring this many mini-batches or more shows a progress bar


def sorted_minibatches(batch: TraceBatch, batch_size: int) -> list[list[int]]:
    """Row indices of each mini-batch: longest first, so padding stays small and an out-of-memory error shows at
    once; rows sharing a prompt stay together (`prompt_sharing.grouped_order`), so a reranker's N samples of a
    question run its prompt once."""
    order = grouped_order(batch.input_ids, batch.attention_mask, batch.response_mask)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def forward_minibatches(
    fn: Callable[[TraceBatch], torch.Tensor],
    batch: TraceBatch,
    minibatches: list[list[int]],
    device: torch.device | str,
) -> torch.Tensor:
    """`fn` (a (b, t) -> (b, t) scorer) over the given mini-batches of `batch`'s rows, without gradient.

    Returns (B, T) float32 on CPU in input order, 0 on padding columns ((B, T, ...) when `fn` gives (b, t, ...)).
    A progress bar shows when there are at least `PROGRESS_MIN_BATCHES` mini-batches (long scoring, not a step's).
    """
    out = None
    bar = tqdm(minibatches, desc="score", unit="batch", disable=len(minibatches) < PROGRESS_MIN_BATCHES, leave=False)
    with torch.no_grad():
        for idx in bar:
            s = fn(batch.select(idx).to(device)).float().cpu()
            if out is None:
                out = torch.zeros(batch.input_ids.shape + s.shape[2:], dtype=torch.float32)
            out[idx, : s.shape[1]] = s
    return torch.zeros(batch.input_ids.shape) if out is None else out


def forward_sorted(
    fn: Callable[[TraceBatch], torch.Tensor], batch: TraceBatch, batch_size: int, device: torch.device | str
) -> torch.Tensor:
    """`forward_minibatches` over `sorted_minibatches`: the scoring forward of every `TraceScorer`."""
    return forward_minibatches(fn, batch, sorted_minibatches(batch, batch_size), device)


def response_values(values: torch.Tensor, batch: TraceBatch) -> list[torch.Tensor]:
    """Each row's values on its response columns. (B, T) -> B tensors (n_b,)."""
    return [values[b, batch.response_mask[b].nonzero().squeeze(1)] for b in range(len(batch))]


def response_step_ends(batch: TraceBatch) -> list[list[int]]:
    """`batch.step_ends` (absolute columns) as indices into each response."""
    starts = [int(m.nonzero()[0]) if m.any() else 0 for m in batch.response_mask]
    return [[t - start for t in ends] for ends, start in zip(batch.step_ends, starts)]


class TraceScorer(ABC):
    """The scoring API over any per-token value (B, T) of packed traces: subclasses say what the value is.

    Needs `tokenizer` (pad and EOS set), `step_spans` (response -> step character spans), `max_length`, and the
    defaults of the views: `step_reduce` (a step's score from its tokens) and `aggregate_discount` (γ of the
    `discounted` aggregation); a call's own `step_reduce`/`aggregate_discount` (when not None) wins.
    """

    tokenizer: object
    step_spans: Callable[[str], list[Span]]
    max_length: int | None
    step_reduce: str
    aggregate_discount: float

    @abstractmethod
    def token_values(self, batch: TraceBatch) -> torch.Tensor:
        """(B, T) float32 on CPU: the value of every response token, 0 elsewhere (no gradient)."""

    def score(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        step_spans: Sequence[Sequence[Span]] | None = None,
        step_reduce: str | None = None,
        aggregates: Sequence[str] | None = None,
        aggregate_discount: float | None = None,
        partial: bool = False,
    ) -> TraceScores:
        """All three views of texts from one forward pass. Tokens are this scorer's tokenizer's, EOS last.

        `step_spans[b]`: the steps' character spans in `responses[b]` (default: this model's step splitter), for
        steps that are not lines (ProcessBench steps hold newlines). `aggregates`: default all registered.
        `partial`: the responses are unfinished (a search's partial traces): no EOS is appended.
        """
        scored, _ = self._score_texts(
            prompts, responses, step_spans, step_reduce, aggregates, aggregate_discount, partial
        )
        return scored["value"]

    def token_parts(self, batch: TraceBatch) -> dict[str, torch.Tensor]:
        """The token values (`"value"`) and any part of them a scorer can tell apart, each (B, T), from one forward
        pass; a plain scorer has no parts."""
        return {"value": self.token_values(batch)}

    def score_parts(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        step_spans: Sequence[Sequence[Span]] | None = None,
        step_reduce: str | None = None,
        aggregates: Sequence[str] | None = None,
        aggregate_discount: float | None = None,
    ) -> dict[str, TraceScores]:
        """`score`'s three views of every part of `token_parts` (`"value"` is what `score` returns), one forward
        pass for all."""
        scored, _ = self._score_texts(
            prompts, responses, step_spans, step_reduce, aggregates, aggregate_discount, parts=True
        )
        return scored

    def score_ids(
        self,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]],
        *,
        tokenizer=None,
        prompts: Sequence[str] | None = None,
        step_reduce: str | None = None,
        aggregates: Sequence[str] | None = None,
        aggregate_discount: float | None = None,
    ) -> TraceScores:
        """All three views of token ids (a policy's samples; EOS kept if the ids end with it), token values on
        those very tokens.

        `tokenizer`: the ids' tokenizer (default: the reward model's). With the same vocabulary the ids are scored
        as they are (no re-tokenisation); otherwise the decoded texts are scored as `score` does (reward-model
        tokens, EOS appended: step and trace scores come from there) and each policy token takes the value of the
        reward-model token holding its last character (`traces.project_values`; a policy EOS takes the RM's EOS).
        The reward model then renders the plain `prompts` with its own chat template; they are needed when the ids'
        tokenizer has a template (its rendered prompt cannot be told apart from the task's text), and otherwise
        default to the decoded prompt ids.
        """
        if tokenizer is None or tokenizer is self.tokenizer or tokenizer.get_vocab() == self.tokenizer.get_vocab():
            batch, texts = encode_ids(self.tokenizer, prompt_ids, response_ids, self.step_spans, self.max_length)
            offsets = [token_offsets(self.tokenizer, ids)[1] for ids in response_ids]
            spans = [self.step_spans(t) for t in texts]
            return self._views(batch, texts, offsets, spans, step_reduce, aggregates, aggregate_discount)
        if prompts is None:
            if has_template(tokenizer):
                raise ValueError(
                    "score_ids: the ids' tokenizer has a chat template and the reward model's vocabulary "
                    "differs; pass the plain prompts (prompts=[...]) to be rendered with its own"
                )
            prompts = tokenizer.batch_decode([list(p) for p in prompt_ids], skip_special_tokens=True)
        texts = tokenizer.batch_decode([list(r) for r in response_ids], skip_special_tokens=True)
        scored, batch = self._score_texts(prompts, texts, None, step_reduce, aggregates, aggregate_discount)
        scored = scored["value"]
        rm_ids = [batch.input_ids[b, batch.response_mask[b]].tolist() for b in range(len(batch))]
        scored.tokens = [
            project_values(torch.from_numpy(values), self.tokenizer, src, tokenizer, list(dst)).numpy()
            for values, src, dst in zip(scored.tokens, rm_ids, response_ids)
        ]
        scored.token_spans = [token_offsets(tokenizer, list(ids))[1] for ids in response_ids]
        return scored

    def score_tokens(self, prompts: Sequence[str], responses: Sequence[str]) -> list[np.ndarray]:
        """r_t per response token (reward-model tokens, EOS last): each a (n_b,) numpy array."""
        return self.score(prompts, responses, aggregates=()).tokens

    def score_steps(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        step_reduce: str | None = None,
        step_spans: Sequence[Sequence[Span]] | None = None,
    ) -> list[list[float]]:
        """One value per step: r at the step's last token (`last`) or the step's minimum over its tokens (`min`)."""
        return self.score(prompts, responses, step_spans=step_spans, step_reduce=step_reduce, aggregates=()).steps

    def score_trace(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        aggregate: str = "mean",
        aggregate_discount: float | None = None,
    ) -> list[float]:
        """One number per trace, by an aggregation of `rairl.scores.AGGREGATIONS`."""
        scores = self.score(prompts, responses, aggregates=[aggregate], aggregate_discount=aggregate_discount)
        return scores.traces[aggregate]

    def as_reward_func(
        self, aggregate: str = "mean", aggregate_discount: float | None = None
    ) -> Callable[..., list[float]]:
        """A reward function for `trl.GRPOTrainer(reward_funcs=[...])`, `(prompts, completions, **kwargs) ->
        list[float]`: the trace score of each prompt + completion (`learned_reward_<aggregate>` in logs). Prompts
        are plain task prompts or TRL conversations (a user turn; the completion an assistant turn): the reward
        model renders the text with its own chat template."""
        check_names([aggregate])

        def reward(prompts: list, completions: list, **kwargs) -> list[float]:
            texts = [plain_text(c) for c in completions]
            return self.score_trace(
                [plain_text(p) for p in prompts], texts, aggregate=aggregate, aggregate_discount=aggregate_discount
            )

        reward.__name__ = f"learned_reward_{aggregate}"
        return reward

    def _score_texts(
        self,
        prompts: Sequence[str],
        responses: Sequence[str],
        step_spans: Sequence[Sequence[Span]] | None,
        step_reduce: str | None,
        aggregates: Sequence[str] | None,
        aggregate_discount: float | None,
        partial: bool = False,
        parts: bool = False,
    ) -> tuple[dict[str, TraceScores], TraceBatch]:
        if len(prompts) != len(responses):
            raise ValueError(f"got {len(prompts)} prompts for {len(responses)} responses")
        spans = [list(s) for s in step_spans] if step_spans is not None else [self.step_spans(r) for r in responses]
        if len(spans) != len(responses):
            raise ValueError(f"got step spans for {len(spans)} responses, expected {len(responses)}")
        batch = encode_texts(self.tokenizer, prompts, responses, spans, self.max_length, add_eos=not partial)
        enc = self.tokenizer(list(responses), add_special_tokens=False, return_offsets_mapping=True)
        # the appended EOS is a zero-width token at the end of the text; a partial trace has none
        offsets = [
            [tuple(o) for o in row] + ([] if partial else [(len(r), len(r))])
            for row, r in zip(enc["offset_mapping"], responses)
        ]
        values = self.token_parts(batch) if parts else {"value": self.token_values(batch)}
        views = {
            name: self._views(batch, list(responses), offsets, spans, step_reduce, aggregates, aggregate_discount, v)
            for name, v in values.items()
        }
        return views, batch

    def _views(
        self,
        batch: TraceBatch,
        responses: list[str],
        offsets: list[list[Span]],
        spans: list[list[Span]],
        step_reduce: str | None,
        aggregates: Sequence[str] | None,
        aggregate_discount: float | None,
        token_values: torch.Tensor | None = None,
    ) -> TraceScores:
        aggregates = list(AGGREGATIONS) if aggregates is None else list(aggregates)
        step_reduce = step_reduce or self.step_reduce
        aggregate_discount = self.aggregate_discount if aggregate_discount is None else aggregate_discount
        check_names(aggregates, step_reduce)
        values = [
            v.numpy()
            for v in response_values(self.token_values(batch) if token_values is None else token_values, batch)
        ]
        for b, (v, o) in enumerate(zip(values, offsets)):
            assert len(v) == len(o), f"trace {b}: {len(v)} token rewards for {len(o)} token offsets"
        masks = [answer_token_mask(r, o) for r, o in zip(responses, offsets)]
        steps, traces = trace_views(
            values,
            response_step_ends(batch),
            masks,
            aggregates=aggregates,
            step_reduce=step_reduce,
            gamma=aggregate_discount,
        )
        return TraceScores(values, offsets, steps, spans, traces)
