r"""Reward-guided search over reasoning steps (DESIGN §2.5): best-of-N, step-level beam search and DVTS, with any
scorer of partial traces: the learned reward, or the policy's own likelihood as its twin (same code).

A *step* ends at the task's step boundary (`Task.step_boundary`, a newline for line-split tasks): generation of a
step stops there, or at EOS (the trace has answered), or after `max_step_tokens` (the step goes on next round).
A partial trace y_{1..k} is scored by its step scores v_1..v_k (the scorer's step view, no EOS appended) aggregated:

    score(y_{1..k}) = v_k (last) | min_j v_j (min) | mean_j v_j (mean)

With N candidates per round and M samples per expansion:

    best_of_n   N whole samples; the answer is the highest-scored one (reranking, for reference)
    beam        B = N / M beams; each round every live beam draws M next steps, the B·M candidates (live and
                answered) are ranked by score, ties to the earlier candidate, and the top B kept; kept answered
                candidates are set aside, the live ones expand in the next round
    dvts        N / M independent subtrees (diverse verifier tree search), each a beam of width 1 that draws M
                next steps per round and keeps its best

Rounds end when no beam is live or after `max_steps`; the answer is the best-scored answered candidate (else the
best live one). Compute is counted as generated tokens (every candidate's, kept or not) and scorer calls (traces
scored); at equal N the three methods generate about the same number of tokens.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from rairl import scores
from rairl.chat import render_prompts
from rairl.inference.sampling import MAX_TEMPERATURE, MIN_TEMPERATURE
from rairl.options import check_number
from rairl.tasks import Example, Task

logger = logging.getLogger(__name__)

METHODS = ("best_of_n", "beam", "dvts")


@dataclass
class Candidate:
    """A (partial) response of one question: its text, whether it has answered, its score, what it cost."""

    text: str
    finished: bool = False
    score: float = -math.inf
    steps: list[float] = field(default_factory=list)
    tokens: int = 0  # tokens generated for this candidate's last step (the search sums them all)
    row: int = 0  # its row in the sampler's batch (`Rows`): where its next step continues from


def top_k(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """The k best by score, ties to the earlier candidate (`rairl.scores.top_k`): the beam's selection rule."""
    return [candidates[i] for i in scores.top_k([c.score for c in candidates], k)]


def check_budget(method: str, n: int, m: int) -> None:
    """N candidates per round as N/M beams (or subtrees) × M samples: M must divide N."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if n < 1 or m < 1:
        raise ValueError(f"need N >= 1 and M >= 1 (--n, --m), got N={n}, M={m}")
    if method != "best_of_n" and n % m:
        raise ValueError(f"{method}: N={n} must be a multiple of M={m} (N/M beams, each expanded M ways)")


def check_settings(temperature: float, max_steps: int, max_step_tokens: int) -> None:
    """Sampling and round limits a search can run with (a temperature of 0, NaN or far below 1e-4 breaks the
    softmax: `rairl.inference.sampling.MIN_TEMPERATURE`; zero rounds or tokens search nothing)."""
    rule = f"must lie in [{MIN_TEMPERATURE:g}, {MAX_TEMPERATURE:g}] (sampling: softmax(logits / T))"
    check_number("temperature", temperature, low=MIN_TEMPERATURE, high=MAX_TEMPERATURE, rule=rule)
    check_number("max_steps", max_steps, integer=True, low=1, rule="must be >= 1 (rounds of search)")
    check_number("max_step_tokens", max_step_tokens, integer=True, low=1, rule="must be >= 1 (tokens per step)")


def row_bytes(model, positions: int) -> int:
    """Memory one live trace holds during a search: its KV cache over `positions` positions (keys and values of
    every layer, in the model's dtype) and three float32 rows as wide as the vocabulary (its kept next-token
    logits, the forward pass's output and the softmax)."""
    config = model.config
    heads = getattr(config, "num_attention_heads", 1) or 1
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or getattr(config, "hidden_size", 0) // heads
    layers = getattr(config, "num_hidden_layers", 1)
    itemsize = next(model.parameters()).element_size()
    return 2 * layers * kv_heads * head_dim * positions * itemsize + 3 * 4 * getattr(config, "vocab_size", 0)


def free_memory(device: torch.device) -> tuple[int, str]:
    """Bytes free where the search's tensors live, and where that is (for a message)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0], f"free on {device}"
    import psutil

    return psutil.virtual_memory().available, "free in this machine's memory"


def check_boundary(tokenizer, boundary: str | None) -> str:
    """The step boundary, refused when the task has none or the policy's vocabulary cannot write it."""
    if not boundary:
        raise ValueError("search needs steps: the task has no step boundary (Task.step_boundary)")
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    texts = {tokenizer.convert_tokens_to_string([t]) for t in vocab if t is not None}
    if not any(boundary in t for t in texts):
        raise ValueError(f"the policy's tokenizer has no token that writes the step boundary {boundary!r}")
    return boundary


@dataclass
class Rows:
    """The search's live traces as one batch: each row's KV cache (prompt and steps so far, computed once), its
    attention mask (left padding, and holes where a row waited for the others), the logits of its next token, and
    its response token ids. Rows are selected and repeated between rounds; nothing is recomputed."""

    cache: Any
    mask: torch.Tensor  # (R, L) long
    logits: torch.Tensor  # (R, V) float32: the next token's distribution of each row
    ids: list[list[int]]


class StepSampler:
    """Samples next steps for many traces at once, continuing each from its cached prefix (`Rows`).

    A step ends after a token that writes the boundary (BPE tokens may carry more text after it), at EOS (the
    trace has answered), or after `max_step_tokens` (it goes on in the next round). Sampling is plain: softmax of
    logits / temperature, no top-k or top-p, as `rairl sample` draws."""

    def __init__(self, model, tokenizer, boundary: str | None, temperature: float = 1.0, max_step_tokens: int = 32):
        self.model, self.tokenizer, self.temperature = model, tokenizer, temperature
        self.max_step_tokens = max_step_tokens
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        ends = [i for i, t in enumerate(self._token_texts()) if boundary and boundary in t]
        self.ends = torch.zeros(len(tokenizer), dtype=torch.bool)
        self.ends[ends] = True

    def _token_texts(self) -> list[str]:
        return [self.tokenizer.decode([i]) for i in range(len(self.tokenizer))]

    @torch.inference_mode()
    def start(self, prompts: Sequence[str]) -> Rows:
        """One row per prompt (rendered with the chat template): the prompt's forward pass, once."""
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "left"
        try:
            enc = self.tokenizer(render_prompts(self.tokenizer, list(prompts)), return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.model.device)  # fmt: skip
        finally:
            self.tokenizer.padding_side = side
        mask = enc["attention_mask"]
        position = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=position, use_cache=True)
        return Rows(out.past_key_values, mask, out.logits[:, -1].float(), [[] for _ in prompts])

    @torch.inference_mode()
    def step(self, rows: Rows, parents: Sequence[int]) -> tuple[Rows, list[tuple[list[int], bool]]]:
        """One new row per entry of `parents` (a row index of `rows`, repeated for several draws), each extended
        by one sampled step; returns the new rows and, per row, the step's token ids and whether it drew EOS."""
        idx = torch.tensor(list(parents), dtype=torch.long, device=rows.mask.device)
        rows.cache.reorder_cache(idx)  # in place: every layer's keys and values, rows selected and repeated
        mask, logits = rows.mask[idx], rows.logits[idx]
        ids = [list(rows.ids[p]) for p in parents]
        steps: list[list[int]] = [[] for _ in parents]
        finished = torch.zeros(len(parents), dtype=torch.bool)
        live = torch.ones(len(parents), dtype=torch.bool)
        for _ in range(self.max_step_tokens):
            if not live.any():
                break
            probs = torch.softmax(logits[live] / self.temperature, dim=-1)
            drawn = torch.multinomial(probs, 1).squeeze(1).cpu()
            token = torch.full((len(parents),), self.pad, dtype=torch.long)
            token[live] = drawn
            for b, t in zip(live.nonzero().squeeze(1).tolist(), drawn.tolist()):
                steps[b].append(t)
            ended = live & ((token == self.eos) | self.ends[token])
            finished |= live & (token == self.eos)
            mask = torch.cat([mask, live.long().to(mask.device)[:, None]], dim=1)  # waiting rows: a hole
            position = mask.sum(-1, keepdim=True) - 1
            out = self.model(input_ids=token[:, None].to(mask.device), attention_mask=mask, position_ids=position,
                             past_key_values=rows.cache, use_cache=True)  # fmt: skip
            keep = live.to(logits.device)
            logits = torch.where(keep[:, None], out.logits[:, -1].float(), logits)  # waiting rows keep theirs
            live &= ~ended
        for b, step in enumerate(steps):
            ids[b] += step
        return Rows(rows.cache, mask, logits, ids), [(s, bool(f)) for s, f in zip(steps, finished)]


def score(
    scorer, prompts: Sequence[str], candidates: Sequence[Candidate], how: str, step_reduce: str | None = None
) -> int:
    """Score every candidate in place (answered ones as finished traces, EOS appended; live ones as partial);
    returns the number of traces scored. `step_reduce`: None for the scorer's own."""
    for finished in (True, False):
        idx = [i for i, c in enumerate(candidates) if c.finished == finished and c.text.strip()]
        if not idx:
            continue
        views = scorer.score(
            [prompts[i] for i in idx],
            [candidates[i].text for i in idx],
            aggregates=(),
            step_reduce=step_reduce,
            partial=not finished,
        )
        for i, steps in zip(idx, views.steps):
            candidates[i].steps = list(steps)
            candidates[i].score = scores.search_score(steps, how)
    return sum(1 for c in candidates if c.text.strip())


@dataclass
class SearchResult:
    """One question's outcome: the chosen trace, whether it answered, and the compute spent on it."""

    response: str
    finished: bool
    score: float
    tokens: int
    scorer_calls: int


def choose(finished: Sequence[Candidate], live: Sequence[Candidate], tokens: int, calls: int) -> SearchResult:
    best = top_k(finished, 1) or top_k(live, 1)
    c = best[0] if best else Candidate("")
    return SearchResult(c.text, c.finished, c.score, tokens, calls)


@dataclass
class Searcher:
    """A policy, a scorer and the search settings; `run(method, n, prompts)` searches every prompt together."""

    model: Any
    tokenizer: Any
    scorer: Any
    boundary: str | None
    m: int = 4
    how: str = "min"
    step_reduce: str | None = None  # None: the scorer's own
    temperature: float = 1.0
    max_steps: int = 10
    max_step_tokens: int = 32
    batch_rows: int = 256  # traces live at once: questions go in chunks of batch_rows // N (KV caches are kept)
    progress: bool = True
    memory_limit: int | None = None  # bytes the live traces may take (`check_memory`); None: what is free

    def __post_init__(self) -> None:
        scores.search_score([], self.how)  # checks the name
        check_settings(self.temperature, self.max_steps, self.max_step_tokens)
        check_number("batch_rows", self.batch_rows, integer=True, low=1, rule="must be >= 1")
        self.boundary = check_boundary(self.tokenizer, self.boundary)
        self.sampler = StepSampler(self.model, self.tokenizer, self.boundary, self.temperature, self.max_step_tokens)
        self.rows: Rows | None = None
        self.seconds = {"generate": 0.0, "score": 0.0}

    def run(self, method: str, n: int, prompts: Sequence[str]) -> list[SearchResult]:
        check_budget(method, n, self.m)
        chunk = max(1, self.batch_rows // n)
        self.check_memory(n, min(chunk, len(prompts)), prompts)
        return [r for at in range(0, len(prompts), chunk) for r in self._run(method, n, prompts[at : at + chunk])]

    def check_memory(self, n: int, questions: int, prompts: Sequence[str]) -> None:
        """Refuse a search whose live traces (N per question, `questions` questions at once) would not fit: N ×
        questions × `row_bytes` against `memory_limit` (default: the free memory), the estimate in the message."""
        if not prompts:
            return
        longest = max(map(len, self.tokenizer(render_prompts(self.tokenizer, list(prompts)))["input_ids"]))
        per_row = row_bytes(self.model, longest + self.max_steps * self.max_step_tokens)
        need = n * questions * per_row
        limit, where = (
            (self.memory_limit, "allowed (memory_limit)") if self.memory_limit else free_memory(self.model.device)
        )
        if need > limit:
            fits = max(0, limit // (questions * per_row))
            raise ValueError(
                f"search: N={n} keeps {n * questions:,} traces live at once (N × {questions} question(s)), about "
                f"{need / 2**30:,.1f} GiB of KV cache and logits ({per_row / 2**20:,.2f} MiB a trace), over the "
                f"{limit / 2**30:,.1f} GiB {where}; lower --n (about {fits:,} fit) or --max_steps / "
                "--max_step_tokens"
            )

    def _run(self, method: str, n: int, prompts: Sequence[str]) -> list[SearchResult]:
        self.rows = self.sampler.start(prompts)  # one row per prompt: the prompt's forward pass, once
        if method == "best_of_n":
            return self._best_of_n(n, prompts)
        # (question, tree) pairs: beam search is one tree of width N/M, DVTS N/M trees of width 1
        width, trees = (n // self.m, 1) if method == "beam" else (1, n // self.m)
        roots = [(q, t) for q in range(len(prompts)) for t in range(trees)]
        live = {r: [Candidate("", row=r[0])] for r in roots}
        done: dict[tuple[int, int], list[Candidate]] = {r: [] for r in roots}
        tokens, calls = [0] * len(prompts), [0] * len(prompts)
        for step in tqdm(range(self.max_steps), desc=f"{method} N={n}", unit="round", disable=not self.progress):
            active = [(r, beam) for r in roots for beam in live[r]]
            if not active:
                break
            if step == 0 and method == "beam":  # the first round: N draws from the prompt itself
                active = [(r, beam) for r, beam in active for _ in range(width)]
            grown = self._expand([prompts[r[0]] for r, _ in active], [beam for _, beam in active])
            pool: dict[tuple[int, int], list[Candidate]] = {r: [] for r in roots}
            for (r, _), children in zip(active, grown):
                pool[r] += children
                tokens[r[0]] += sum(c.tokens for c in children)
            flat = [c for r in roots for c in pool[r]]
            self._score([prompts[r[0]] for r in roots for _ in pool[r]], flat)
            for r in roots:
                calls[r[0]] += sum(1 for c in pool[r] if c.text.strip())
                kept = top_k(pool[r], width)
                done[r] += [c for c in kept if c.finished]
                live[r] = [c for c in kept if not c.finished]
        results = []
        for q in range(len(prompts)):
            finished = [c for t in range(trees) for c in done[(q, t)]]
            still = [c for t in range(trees) for c in live[(q, t)]]
            results.append(choose(finished, still, tokens[q], calls[q]))
        return results

    def _expand(self, prompts: list[str], parents: list[Candidate]) -> list[list[Candidate]]:
        """M sampled next steps of each parent, all in one batch, each continuing its parent's cached prefix."""
        start = time.perf_counter()
        self.rows, steps = self.sampler.step(self.rows, [p.row for p in parents for _ in range(self.m)])
        self.seconds["generate"] += time.perf_counter() - start
        children = []
        for i, parent in enumerate(parents):
            kids = []
            for j in range(i * self.m, (i + 1) * self.m):
                ids, finished = steps[j]
                text = parent.text + self.tokenizer.decode(ids, skip_special_tokens=True)
                kids.append(Candidate(text, finished=finished, tokens=len(ids), row=j))
            children.append(kids)
        return children

    def _score(self, prompts: list[str], candidates: list[Candidate]) -> None:
        start = time.perf_counter()
        try:
            score(self.scorer, prompts, candidates, self.how, self.step_reduce)
        except ValueError as err:  # a candidate the scorer cannot take (longer than its context, most likely)
            raise ValueError(
                f"search: scoring its candidates failed: {err}; a trace grows to max_steps × max_step_tokens = "
                f"{self.max_steps * self.max_step_tokens} tokens: lower --max_steps or --max_step_tokens to fit "
                "the scorer's context"
            ) from None
        self.seconds["score"] += time.perf_counter() - start

    def _best_of_n(self, n: int, prompts: Sequence[str]) -> list[SearchResult]:
        """N whole samples per prompt (no step boundary: each runs to EOS or the token limit), the best kept."""
        whole = StepSampler(self.model, self.tokenizer, None, self.temperature, self.max_steps * self.max_step_tokens)
        start = time.perf_counter()
        _, steps = whole.step(self.rows, [q for q in range(len(prompts)) for _ in range(n)])
        self.seconds["generate"] += time.perf_counter() - start
        texts = [self.tokenizer.decode(ids, skip_special_tokens=True) for ids, _ in steps]
        flat = [Candidate(t, finished=True, tokens=len(ids)) for t, (ids, _) in zip(texts, steps)]
        self._score([p for p in prompts for _ in range(n)], flat)
        groups = [flat[q * n : (q + 1) * n] for q in range(len(prompts))]
        return [choose(group, [], sum(c.tokens for c in group), n) for group in groups]


def search_rows(
    searcher: Searcher, task: Task, examples: Sequence[Example], method: str, n: int, scorer_name: str
) -> list[dict[str, Any]]:
    """One row per question: the chosen trace, its answer and verdict, and the compute spent."""
    results = searcher.run(method, n, [task.prompt(ex) for ex in examples])
    rows = []
    for ex, r in zip(examples, results):
        answer = task.extract_answer(r.response)
        rows.append({
            "id": ex.id, "method": method, "scorer": scorer_name, "n": n, "m": searcher.m, "question": ex.question,
            "response": r.response, "answer": answer, "gold": ex.answer, "correct": bool(task.is_correct(answer, ex)),
            "finished": r.finished, "score": r.score, "tokens": r.tokens, "scorer_calls": r.scorer_calls,
        })  # fmt: skip
    return rows
