"""The learned reward as an object: a discriminator, its tokenizer and a step splitter, with no training code.

Token rewards follow DESIGN §1.3: values v_t = s_t / temperature on the positions of the granularity mask m_t,
backfilled to every response token, r_t = v_{t'} with t' = min{k >= t : m_k = 1}, then clipped to [-β, β]; the
scoring API reads r_t or f_t = backfill(v)_t + ℓ_t by the score form (`rairl.reward_settings`, which holds every
setting of the reward, saved with it).
Scoring runs without gradient on length-sorted mini-batches (little padding), results in input order.

Scoring API (DESIGN §2.1): one forward pass gives three views (`TraceScores`, `rairl.scores`):
`score_tokens` the backfilled token rewards r_t (for the `dense` granularity, r_t = v_t, the reward of the prefix
ending at token t), `score_steps` one value per step (r at its last token, or its minimum), `score_trace` one
number per trace by an aggregation (mean | min | last | sum | discounted | answer_span). Texts are tokenised by the
reward model's tokenizer, EOS appended as a finished sample carries it; `score_ids` scores token ids as they are
(same tokenizer) or through character offsets (a policy with another tokenizer: its tokens get the reward of the
reward-model token holding their last character). `as_reward_func` plugs the reward into `trl.GRPOTrainer`.
The API lives in `TraceScorer` over any per-token value; `rairl.inference.likelihood` reuses it for log-probs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rairl.chat import has_template, plain_text
from rairl.discriminator import Discriminator
from rairl.prompt_sharing import grouped_order
from rairl.reward_settings import RewardSettings, token_rewards
from rairl.rewards.granularity import granularity_mask
from rairl.scores import AGGREGATIONS, TraceScores, answer_token_mask, check_names, trace_views
from rairl.tasks.base import line_spans
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

    def score_tokens(self, prompts: Sequence[str], responses: Sequence[str]) -> list[torch.Tensor]:
        """r_t per response token (reward-model tokens, EOS last): each (n_b,) float32."""
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
