"""Traces as token tensors: prompt + response, the response mask, and the token index where each step ends.

Alignment is by token ids and character offsets, never by "the last L positions" of a re-tokenised text
(DESIGN §5): one template token of drift would shift every reward.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rairl.chat import render_prompts

logger = logging.getLogger(__name__)

Span = tuple[int, int]


@dataclass
class TraceBatch:
    """Right-padded traces. `input_ids`, `attention_mask`, `response_mask`: (B, T).

    `step_ends[b]` holds the absolute column of the last token of each reasoning step of trace b.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor
    step_ends: list[list[int]]

    def to(self, device: torch.device | str) -> TraceBatch:
        return TraceBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.response_mask.to(device), self.step_ends
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, index: Sequence[int]) -> TraceBatch:
        idx = torch.as_tensor(list(index), dtype=torch.long)
        batch = TraceBatch(
            self.input_ids[idx], self.attention_mask[idx], self.response_mask[idx], [self.step_ends[i] for i in index]
        )
        return batch.trim()

    def trim(self) -> TraceBatch:
        """Drop padding columns that every row has (after selecting short rows)."""
        width = int(self.attention_mask.sum(1).max().item()) if len(self) else 0
        return TraceBatch(
            self.input_ids[:, :width], self.attention_mask[:, :width], self.response_mask[:, :width], self.step_ends
        )


def step_end_tokens(step_char_spans: Sequence[tuple[int, int]], token_offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Index of the token holding the last character of each step.

    `step_char_spans`: `[start, end)` character spans of the steps in the response (`Task.step_spans`).
    `token_offsets`: per response token, its `[start, end)` characters in the same response text (a tokenizer's
    `offset_mapping`), in order. The result indexes `token_offsets` (add the column of the first response token
    to get `step_ends` for `granularity_mask`).

    A step that ends inside a token maps to that token (tokens may straddle step boundaries). The rule used is
    "the last token that starts before the step's end", which is the token holding character `end - 1`, and
    still gives the nearest preceding token when a tokenizer's offsets leave that character uncovered (dropped
    whitespace); tokens with empty offsets (special tokens) are skipped. A step covered by no token at all
    raises ValueError.
    """
    kept = [(i, s, e) for i, (s, e) in enumerate(token_offsets) if e > s]
    starts = [s for _, s, _ in kept]
    if any(a > b for a, b in zip(starts, starts[1:])):
        raise ValueError("token_offsets must be in text order (non-decreasing starts)")
    ends = []
    for start, end in step_char_spans:
        if end <= start:
            raise ValueError(f"empty step span ({start}, {end})")
        j = bisect.bisect_left(starts, end) - 1  # last kept token with start < end
        if j < 0 or kept[j][2] <= start:
            raise ValueError(f"step span ({start}, {end}) is covered by no token; token offsets: {list(token_offsets)}")
        ends.append(kept[j][0])
    return ends


def token_offsets(tokenizer, ids: Sequence[int]) -> tuple[str, list[Span]]:
    """Decoded text of `ids` and each token's character span in it.

    Fast path: re-tokenising the decoded text gives the same ids, so the tokenizer's own offsets apply.
    Otherwise (a non-canonical tokenisation, as sampling can produce) spans come from incremental decoding.
    """
    ids = list(ids)
    text = tokenizer.decode(ids, skip_special_tokens=True)
    special = set(tokenizer.all_special_ids)
    if text:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        plain = [i for i in ids if i not in special]
        if enc["input_ids"] == plain:
            it = iter(enc["offset_mapping"])
            return text, [(len(text), len(text)) if i in special else tuple(next(it)) for i in ids]
    spans, prev = [], 0
    for k in range(len(ids)):
        end = len(tokenizer.decode(ids[: k + 1], skip_special_tokens=True))
        spans.append((prev, end))
        prev = end
    return text, spans


def pad_rows(rows: list[list[int]], pad_id: int) -> torch.Tensor:
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def build_batch(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    step_ends: Sequence[Sequence[int]],
    pad_id: int,
    max_length: int | None = None,
) -> TraceBatch:
    """Pack prompt + response ids, right-padded. `step_ends` are indices into each response.

    A trace longer than `max_length` loses tokens from the *start of its prompt*, never from the response:
    truncating the response would drop the answer the reward is about (DESIGN §5).
    """
    rows, starts = [], []
    for b, (p, r) in enumerate(zip(prompt_ids, response_ids, strict=True)):
        p, r = list(p), list(r)
        if max_length is not None and len(p) + len(r) > max_length:
            if len(r) >= max_length:
                raise ValueError(
                    f"trace {b}: the response alone has {len(r)} tokens, over max_length={max_length}; "
                    "raise max_length or shorten the response"
                )
            logger.warning("trace %d: prompt cut from the left to fit max_length=%d", b, max_length)
            p = p[len(p) + len(r) - max_length :]
        rows.append(p + r)
        starts.append(len(p))
    input_ids = pad_rows(rows, pad_id)
    attention_mask = torch.zeros_like(input_ids)
    response_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for b, row in enumerate(rows):
        attention_mask[b, : len(row)] = 1
        response_mask[b, starts[b] : len(row)] = True
    ends = [[starts[b] + t for t in e] for b, e in enumerate(step_ends)]
    return TraceBatch(input_ids, attention_mask, response_mask, ends)


def encode_texts(
    tokenizer,
    prompts: Sequence[str],
    responses: Sequence[str],
    step_spans: Sequence[Sequence[Span]],
    max_length: int | None = None,
    add_eos: bool = True,
) -> TraceBatch:
    """Tokenise prompt and response separately (so the boundary is exact) and pack them. Prompts are plain task
    prompts, rendered with the tokenizer's chat template when it has one (`rairl.chat.render_prompt`).

    `add_eos` appends EOS to each response, as a finished policy sample carries it: the last response token,
    where outcome rewards sit, is then the same for expert traces and policy samples.
    """
    p_ids = tokenizer(render_prompts(tokenizer, prompts), add_special_tokens=False)["input_ids"]
    enc = tokenizer(list(responses), add_special_tokens=False, return_offsets_mapping=True)
    r_ids, ends = [], []
    for ids, offsets, spans in zip(enc["input_ids"], enc["offset_mapping"], step_spans, strict=True):
        ends.append(step_end_tokens(list(spans), [tuple(o) for o in offsets]) if ids else [])
        r_ids.append(list(ids) + ([tokenizer.eos_token_id] if add_eos else []))
    return build_batch(p_ids, r_ids, ends, tokenizer.pad_token_id, max_length)


def encode_ids(
    tokenizer,
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    step_spans: Callable[[str], list[Span]],
    max_length: int | None = None,
) -> tuple[TraceBatch, list[str]]:
    """Pack token ids as they are (a policy's own samples: no re-tokenisation) and find step ends through
    the decoded text's character offsets. Returns the batch and the decoded responses."""
    texts, ends = [], []
    for ids in response_ids:
        text, offsets = token_offsets(tokenizer, ids)
        texts.append(text)
        ends.append(step_end_tokens(step_spans(text), offsets) if ids else [])
    return build_batch(prompt_ids, response_ids, ends, tokenizer.pad_token_id, max_length), texts


def project_values(
    values: torch.Tensor, src_tokenizer, src_ids: Sequence[int], dst_tokenizer, dst_ids: Sequence[int]
) -> torch.Tensor:
    """Per-token values of one text under another tokenizer, aligned through character offsets.

    Each destination token takes the value of the source token holding its last character, so it sees no
    character beyond its own end except inside that one source token. Zero-width (special) destination
    tokens, such as EOS, take the last source value. values: (N_src,) -> (N_dst,).
    """
    _, src = token_offsets(src_tokenizer, src_ids)
    _, dst = token_offsets(dst_tokenizer, dst_ids)
    kept = [k for k, (s, e) in enumerate(src) if e > s]
    ends = [src[k][1] for k in kept]
    out = torch.empty(len(dst), dtype=values.dtype)
    for j, (s, e) in enumerate(dst):
        if e <= s or not kept:
            out[j] = values[-1]
        else:
            out[j] = values[kept[min(bisect.bisect_left(ends, e), len(kept) - 1)]]
    return out
