"""N responses per question from a policy, as rows with answer, verdict and first error; the command (JSONL out)
is `rairl.commands.sample`.

Sampling draws `y ~ π_θ(· | x)` token by token from `softmax(logits / temperature)`, optionally restricted to
the nucleus of mass `top_p`; no top-k cut or repetition penalty is applied, whatever the checkpoint's
generation config says (the library's default top-k of 50 would bias pass@k).
`greedy` takes `argmax` instead. Prompts are batched longest first with LEFT padding, so every prompt's last
token sits at the same position and generation continues from it; results come back in input order.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from rairl.chat import render_prompts
from rairl.io import write_json, write_jsonl, write_text
from rairl.models import ModelArgs, load_policy
from rairl.options import Options
from rairl.tasks import Example, Task

logger = logging.getLogger(__name__)
# transformers divides the logits by the temperature before its softmax: far below 1e-4 they overflow (inf - inf is
# NaN, and torch.multinomial fails); far above, every token is as likely. Argmax is `greedy`.
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-4, 1e4


@dataclass
class SamplingArgs(Options):
    """Sampling options shared by `rairl sample` and `rairl eval`."""

    n: int = field(default=8, metadata={"help": "samples per question"})
    temperature: float = field(
        default=1.0, metadata={"help": f"sampling temperature ({MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g})"}
    )
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass (1 = off)"})
    max_new_tokens: int = field(
        default=64, metadata={"help": "most tokens per response (arith OOD experts need up to 55)"}
    )
    batch_size: int = field(default=32, metadata={"help": "sequences per generate call"})
    limit: int = field(default=0, metadata={"help": "questions per split (0 = all)"})
    seed: int = field(default=0, metadata={"help": "seed of sampling, of a tiny model's init and of the bootstrap"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n < 1 or self.max_new_tokens < 1 or self.batch_size < 1 or self.limit < 0:
            raise ValueError(
                f"need n >= 1, max_new_tokens >= 1, batch_size >= 1 and limit >= 0; got n={self.n}, "
                f"max_new_tokens={self.max_new_tokens}, batch_size={self.batch_size}, limit={self.limit}"
            )

    def check_sampling(self) -> None:
        """Refuse a temperature or top_p that sampling cannot use, in one line."""
        if not MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE or not 0 < self.top_p <= 1:
            raise ValueError(
                f"sampling needs {MIN_TEMPERATURE:g} <= temperature <= {MAX_TEMPERATURE:g} and 0 < top_p <= 1, got "
                f"temperature={self.temperature}, top_p={self.top_p}; for argmax decoding pass --greedy to `rairl "
                "sample` (eval reports greedy already)"
            )


def _check_lengths(lengths: list[int], model, max_new_tokens: int, ids: Sequence[str]) -> None:
    """A prompt plus `max_new_tokens` must fit the model's positions; say which prompt does not."""
    context = getattr(model.config, "max_position_embeddings", None)
    if context is None:
        return
    room = context - max_new_tokens
    for i, length in enumerate(lengths):
        if length > room:
            raise ValueError(
                f"prompt of example {ids[i]!r} has {length} tokens, but the model's context is {context} positions "
                f"and max_new_tokens={max_new_tokens} leaves room for {room}; lower max_new_tokens, shorten the "
                "prompt, or use a model with a longer context"
            )


def _cut_at_eos(ids: list[int], eos_ids: set[int]) -> tuple[list[int], bool]:
    """The tokens before the first EOS, and whether an EOS was found."""
    for j, token in enumerate(ids):
        if token in eos_ids:
            return ids[:j], True
    return ids, False


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id is not None:
        eos.append(tokenizer.eos_token_id)
    if not eos:
        raise ValueError("the tokenizer and the model's generation config define no EOS token; set eos_token")
    return set(eos)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    n: int = 1,
    temperature: float = SamplingArgs.temperature,
    top_p: float = SamplingArgs.top_p,
    max_new_tokens: int = SamplingArgs.max_new_tokens,
    batch_size: int = SamplingArgs.batch_size,
    greedy: bool = False,
    progress: bool = True,
    ids: Sequence[str] | None = None,
) -> list[list[str]]:
    """`n` responses to each prompt, `result[i][j]` = sample j of `prompts[i]` (input order).

    `prompts` are plain task prompts, rendered with the tokenizer's chat template when it has one.
    Responses are decoded without the prompt and without special tokens, cut at the first EOS.
    `batch_size` counts generated sequences per `model.generate` call (prompts per call = batch_size // n,
    at least 1). `ids` name the prompts in error messages (default: their indices).
    A prompt longer than `max_position_embeddings - max_new_tokens` raises ValueError.
    """
    if n < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"n, batch_size and max_new_tokens must be >= 1, got {n}, {batch_size}, {max_new_tokens}")
    if greedy and n != 1:
        raise ValueError(f"greedy decoding gives one response per prompt: use n=1 (got n={n}) or sample")
    if not greedy and (not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE or not 0 < top_p <= 1):
        raise ValueError(
            f"sampling needs {MIN_TEMPERATURE:g} <= temperature <= {MAX_TEMPERATURE:g} and 0 < top_p <= 1, got "
            f"{temperature}, {top_p}"
        )
    ids = [str(i) for i in range(len(prompts))] if ids is None else list(ids)
    if len(ids) != len(prompts):
        raise ValueError(f"got {len(ids)} ids for {len(prompts)} prompts")
    if not prompts:
        return []

    prompts = render_prompts(tokenizer, prompts)  # the chat template, if any; tokenised as the scorers do
    lengths = [len(x) for x in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    _check_lengths(lengths, model, max_new_tokens, ids)
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])  # longest first: memory errors show at once
    per_call = max(1, batch_size // n)
    eos_ids = _eos_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    device = next(model.parameters()).device
    # Set every sampling knob explicitly: a checkpoint's generation_config (top_k 50, a repetition penalty)
    # would otherwise reshape the distribution that pass@k assumes.
    options: dict[str, Any] = (
        {"do_sample": False, "repetition_penalty": 1.0}
        if greedy
        else {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0, "repetition_penalty": 1.0}
    )

    results: list[list[str]] = [[] for _ in prompts]
    truncated = 0
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    try:
        with tqdm(total=len(prompts), desc="generate", unit="prompt", disable=not progress) as bar:
            for start in range(0, len(order), per_call):
                chunk = order[start : start + per_call]
                batch = tokenizer(
                    [prompts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(device)
                out = model.generate(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    max_new_tokens=max_new_tokens,
                    use_cache=True,
                    pad_token_id=pad_id,
                    eos_token_id=sorted(eos_ids),
                    num_return_sequences=n,
                    **options,
                )  # (len(chunk) * n, prompt_len + new), sequences of one prompt are adjacent
                new = out[:, batch["input_ids"].shape[1] :].tolist()
                for row, tokens in enumerate(new):
                    kept, stopped = _cut_at_eos(tokens, eos_ids)
                    truncated += not stopped
                    results[chunk[row // n]].append(tokenizer.decode(kept, skip_special_tokens=True))
                bar.update(len(chunk))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    if truncated:
        logger.warning(
            "%d of %d responses hit max_new_tokens=%d before EOS (truncated); raise max_new_tokens if answers are cut",
            truncated,
            len(prompts) * n,
            max_new_tokens,
        )
    return results


def sample_rows(
    model,
    tokenizer,
    task: Task,
    examples: Sequence[Example],
    *,
    n: int = 1,
    temperature: float = SamplingArgs.temperature,
    top_p: float = SamplingArgs.top_p,
    max_new_tokens: int = SamplingArgs.max_new_tokens,
    batch_size: int = SamplingArgs.batch_size,
    greedy: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One row per (example, sample), grouped by example in input order, samples `0..n-1` within each.

    Row: `id, sample, question, prompt, response, answer` (extracted, or None), `gold, correct,
    first_error` (the task's first wrong step, -1 if none, None where the task cannot check steps).
    """
    prompts = [task.prompt(ex) for ex in examples]
    responses = generate(
        model,
        tokenizer,
        prompts,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        greedy=greedy,
        progress=progress,
        ids=[ex.id for ex in examples],
    )
    return [
        verdict_row(task, ex, prompt, j, response)
        for ex, prompt, group in zip(examples, prompts, responses)
        for j, response in enumerate(group)
    ]


def verdict_row(task: Task, ex: Example, prompt: str, sample: int, response: str) -> dict[str, Any]:
    answer = task.extract_answer(response)
    return {
        "id": ex.id,
        "sample": sample,
        "question": ex.question,
        "prompt": prompt,
        "response": response,
        "answer": answer,
        "gold": ex.answer,
        "correct": bool(task.is_correct(answer, ex)),
        "first_error": task.first_error(response, ex),
    }


def sample_to_file(
    model,
    tokenizer,
    task: Task,
    examples: Sequence[Example],
    output: str | Path,
    *,
    settings: dict[str, Any],
    seed: int,
    n: int = 1,
    chunk: int = 1,
    **options: Any,
) -> list[dict[str, Any]]:
    """`sample_rows` in chunks of `chunk` examples, each chunk's rows appended to `OUTPUT.partial` (flushed and
    fsynced) as soon as they exist, the whole file written atomically to `output` at the end: a run stopped at any
    moment and started again with the same `settings` skips the chunks already done and gives the same rows as an
    uninterrupted run (chunks are fixed by position, and chunk c samples under seed `seed + c`).

    `settings` (the options that shape the samples) are stored beside the partial file (`OUTPUT.partial.json`);
    resuming with different ones is a ValueError, not a silent mix. A line cut by a crash is dropped, and a chunk
    counts as done only when all its examples have their `n` rows.
    """
    output = Path(output)
    partial, meta = output.with_name(output.name + ".partial"), output.with_name(output.name + ".partial.json")
    settings = {**settings, "n": n, "chunk": chunk, "seed": seed, "ids": [ex.id for ex in examples]}
    done: dict[str, list[dict[str, Any]]] = {}
    if partial.is_file() and meta.is_file():
        stored = json.loads(meta.read_text(encoding="utf-8"))
        if stored != settings:
            changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
            raise ValueError(
                f"{partial} was sampled with other options ({', '.join(changed)} differ); rerun with the same "
                f"options to resume it, or delete {partial} and {meta} to start again"
            )
        kept = []
        for line in partial.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # the last line of a write a crash cut short
                continue
            done.setdefault(row["id"], []).append(row)
            kept.append(line + "\n")
        write_text(partial, "".join(kept))  # without the cut line, so that new rows start on a line of their own
    else:
        write_json(meta, settings)
        partial.write_text("", encoding="utf-8")
    chunks = [list(examples[i : i + chunk]) for i in range(0, len(examples), chunk)]
    todo = [c for c, part in enumerate(chunks) if any(len(done.get(ex.id, [])) != n for ex in part)]
    if len(todo) < len(chunks):
        logger.info("%s: resuming, %d of %d chunks already sampled", partial, len(chunks) - len(todo), len(chunks))
    with partial.open("a", encoding="utf-8") as f, tqdm(total=len(examples), desc="sample", unit="question") as bar:
        bar.update(len(examples) - sum(len(chunks[c]) for c in todo))
        for c in todo:
            torch.manual_seed(seed + c)
            rows = sample_rows(model, tokenizer, task, chunks[c], n=n, progress=False, **options)
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
            for ex in chunks[c]:
                done[ex.id] = [r for r in rows if r["id"] == ex.id]
            bar.update(len(chunks[c]))
    rows = [r for ex in examples for r in sorted(done[ex.id], key=lambda r: r["sample"])]
    write_jsonl(output, rows)
    partial.unlink()
    meta.unlink()
    return rows


def load_for_inference(args: ModelArgs, seed: int = 0) -> tuple[Any, Any]:
    """`load_policy`, in eval mode, on the GPU when there is one."""
    model, tokenizer = load_policy(args, seed=seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device).eval(), tokenizer


def select_examples(task: Task, split: str, limit: int) -> list[Example]:
    """The first `limit` examples of `split` (all when `limit` is 0); none is an error, not an empty run."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0 (0: every question), got {limit}")
    examples = list(task.examples(split))
    if not examples:
        raise ValueError(f"{task.name}/{split}: the split has no examples (n_eval, or the data file, is empty)")
    return examples[:limit] if limit else examples
