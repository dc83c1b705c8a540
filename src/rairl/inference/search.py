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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from rairl.chat import render_prompts
from rairl.registry import Registry
from rairl.tasks import Example, Task

logger = logging.getLogger(__name__)

AGGREGATES: Registry = Registry(
    "step aggregation",
    {
        "last": lambda steps: steps[-1],
        "min": min,
        "mean": lambda steps: sum(steps) / len(steps),
    },
)
METHODS = ("best_of_n", "beam", "dvts")


@dataclass
class Candidate:
    """A (partial) response of one question: its text, whether it has answered, its score, what it cost."""

    text: str
    finished: bool = False
    score: float = -math.inf
    steps: list[float] = field(default_factory=list)
    tokens: int = 0  # tokens generated for this candidate's last step (the search sums them all)


def aggregate(step_scores: Sequence[float], how: str) -> float:
    """The score of a partial trace from its step scores; -inf for a trace with no step yet."""
    return AGGREGATES.lookup(how)(list(step_scores)) if step_scores else -math.inf


def top_k(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """The k best by score, ties broken by the earlier candidate (a stable sort): the beam's selection rule."""
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].score, i))
    return [candidates[i] for i in order[:k]]


def check_budget(method: str, n: int, m: int) -> None:
    """N candidates per round as N/M beams (or subtrees) × M samples: M must divide N."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if n < 1 or m < 1:
        raise ValueError(f"need N >= 1 and M >= 1, got N={n}, M={m}")
    if method != "best_of_n" and n % m:
        raise ValueError(f"{method}: N={n} must be a multiple of M={m} (N/M beams, each expanded M ways)")


def check_boundary(tokenizer, boundary: str | None) -> str:
    """The step boundary, refused when the task has none or the policy's vocabulary cannot write it."""
    if not boundary:
        raise ValueError("search needs steps: the task has no step boundary (Task.step_boundary)")
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    texts = {tokenizer.convert_tokens_to_string([t]) for t in vocab if t is not None}
    if not any(boundary in t for t in texts):
        raise ValueError(f"the policy's tokenizer has no token that writes the step boundary {boundary!r}")
    return boundary


@torch.inference_mode()
def next_steps(
    model,
    tokenizer,
    prompts: Sequence[str],
    partials: Sequence[str],
    m: int,
    *,
    boundary: str | None,
    temperature: float = 1.0,
    max_step_tokens: int = 32,
    batch_size: int = 64,
) -> list[list[Candidate]]:
    """M sampled next steps of each partial trace (`partials[i]` continues `prompts[i]`), batched across traces:
    `result[i][j]` is partial i extended by sample j (`finished` when it drew EOS; a step that ran out of
    `max_step_tokens` stays live and goes on in the next round). `boundary` None: no step boundary, each sample runs
    to EOS or the token limit (a whole response, finished either way)."""
    texts = [p + r for p, r in zip(render_prompts(tokenizer, list(prompts)), partials)]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    out: list[list[Candidate]] = []
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    try:
        per_call = max(1, batch_size // m)
        for start in range(0, len(texts), per_call):
            chunk = texts[start : start + per_call]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            gen = model.generate(
                **enc,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_step_tokens,
                num_return_sequences=m,
                **({"stop_strings": [boundary], "tokenizer": tokenizer} if boundary else {}),
                eos_token_id=eos,
                pad_token_id=pad,
            )[:, enc["input_ids"].shape[1] :].tolist()  # (len(chunk)·M, new), the M of one trace adjacent
            for row, ids in enumerate(gen):
                i = start + row // m
                if row % m == 0:
                    out.append([])
                stop = ids.index(eos) + 1 if eos in ids else len(ids)
                while stop > 0 and ids[stop - 1] == pad and pad != eos:  # rows that stopped early are padded
                    stop -= 1
                new = ids[:stop]
                step = tokenizer.decode(new, skip_special_tokens=True)
                ended = eos in new or not boundary  # a step cut by max_step_tokens goes on in the next round
                out[i].append(Candidate(partials[i] + step, finished=ended, tokens=len(new)))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return out


def score(scorer, prompts: Sequence[str], candidates: Sequence[Candidate], how: str, step_reduce: str) -> int:
    """Score every candidate in place (answered ones as finished traces, EOS appended; live ones as partial);
    returns the number of traces scored."""
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
            candidates[i].score = aggregate(steps, how)
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
    boundary: str
    m: int = 4
    how: str = "min"
    step_reduce: str = "min"
    temperature: float = 1.0
    max_steps: int = 10
    max_step_tokens: int = 32
    batch_size: int = 64
    progress: bool = True

    def __post_init__(self) -> None:
        AGGREGATES.lookup(self.how)
        self.boundary = check_boundary(self.tokenizer, self.boundary)

    def run(self, method: str, n: int, prompts: Sequence[str]) -> list[SearchResult]:
        check_budget(method, n, self.m)
        if method == "best_of_n":
            return self._best_of_n(n, prompts)
        # (question, tree) pairs: beam search is one tree of width N/M, DVTS N/M trees of width 1
        width, trees = (n // self.m, 1) if method == "beam" else (1, n // self.m)
        roots = [(q, t) for q in range(len(prompts)) for t in range(trees)]
        live = {r: [Candidate("")] for r in roots}
        done: dict[tuple[int, int], list[Candidate]] = {r: [] for r in roots}
        tokens, calls = [0] * len(prompts), [0] * len(prompts)
        rounds = range(self.max_steps)
        for step in tqdm(rounds, desc=f"{method} N={n}", unit="round", disable=not self.progress):
            active = [(r, beam) for r in roots for beam in live[r]]
            if not active:
                break
            if step == 0 and method == "beam":  # the first round: N draws from the prompt itself
                active = [(r, beam) for r in roots for beam in live[r] for _ in range(width)]
            grown = self._expand([prompts[r[0]] for r, _ in active], [b.text for _, b in active])
            pool: dict[tuple[int, int], list[Candidate]] = {r: [] for r in roots}
            for (r, _), children in zip(active, grown):
                pool[r] += children
                tokens[r[0]] += sum(c.tokens for c in children)
            flat = [c for r in roots for c in pool[r]]
            n_scored = score(self.scorer, [prompts[r[0]] for r in roots for _ in pool[r]], flat, self.how,
                             self.step_reduce)  # fmt: skip
            for r in roots:
                calls[r[0]] += sum(1 for c in pool[r] if c.text.strip())
                kept = top_k(pool[r], width)
                done[r] += [c for c in kept if c.finished]
                live[r] = [c for c in kept if not c.finished]
            logger.debug("round %d: %d candidates scored", step, n_scored)
        results = []
        for q in range(len(prompts)):
            finished = [c for t in range(trees) for c in done[(q, t)]]
            still = [c for t in range(trees) for c in live[(q, t)]]
            results.append(choose(finished, still, tokens[q], calls[q]))
        return results

    def _expand(self, prompts: list[str], partials: list[str]) -> list[list[Candidate]]:
        return next_steps(
            self.model,
            self.tokenizer,
            prompts,
            partials,
            self.m,
            boundary=self.boundary,
            temperature=self.temperature,
            max_step_tokens=self.max_step_tokens,
            batch_size=self.batch_size,
        )

    def _best_of_n(self, n: int, prompts: Sequence[str]) -> list[SearchResult]:
        samples = next_steps(self.model, self.tokenizer, prompts, [""] * len(prompts), n, boundary=None,
                             temperature=self.temperature, max_step_tokens=self.max_steps * self.max_step_tokens,
                             batch_size=self.batch_size)  # fmt: skip
        flat = [c for group in samples for c in group]
        score(self.scorer, [p for p in prompts for _ in range(n)], flat, self.how, self.step_reduce)
        return [choose(group, [], sum(c.tokens for c in group), n) for group in samples]


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
