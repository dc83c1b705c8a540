r"""Step-labelled traces for a process reward model (DESIGN §2.7): three file formats, one example type, and the
token features the PRM trainer reads.

    stepwise      TRL's stepwise supervision: {"prompt", "completions": [step, ...], "labels": [y_k, ...]}, each
                  y_k a bool or a number in [0, 1] (a soft label: the probability that step k is right)
    processbench  ProcessBench's rows: {"problem", "steps", "label"}, label = the first wrong step (-1: none); the
                  steps before it are right (1), it is wrong (0), the steps after it carry no label
    samples       `rairl sample` rows: {"prompt", "response", "first_error", "correct"}, labelled by the task's step
                  checker (Math-Shepherd's automatic labelling, exact on arith and countdown_gen); first_error = -1:
                  every step right; first_error = the number of steps: every step right but one is missing

Every example is a prompt, a response and the character span of each step in it, with one label per step (None: no
label). The response is the steps joined by newlines (stepwise, processbench; `rairl.scores.joined_spans`), or the
sample's own text split by the task (`Task.step_spans`), as `rairl rerank` scores it. A step is labelled at its last
token (`rairl.traces.step_end_tokens`, as the `step` granularity marks it), and the response's last token (EOS,
where the `last` trace aggregation reads) with the trace's label: min_k y_k, and 0 for a sample whose answer is
wrong or whose error is a missing step.

Labels stay float32 from the file to the loss, and an ignored step is *absent* from a row's label positions: no
sentinel value (-100) shares a column with the labels, so no cast of that column to bool (trl #2110, where -100
became True) can turn an ignored step into a labelled one. Files under `processbench/` or `mr_gsm8k/` are
evaluation-only and refused.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, Features, Value
from datasets import Sequence as ArrowSequence

from rairl.evaluation.processbench import NO_ERROR, read_processbench
from rairl.io import DataError, read_jsonl, require
from rairl.registry import Registry
from rairl.scores import joined_spans
from rairl.tasks import Example, Task
from rairl.traces import Span, encode_texts

EVALUATION_ONLY = ("processbench", "mr_gsm8k")  # folders of /work/shared/data never trained on (DESIGN §3)
ENCODE_CHUNK = 512  # rows tokenised and packed at once (the packed batch is as wide as its longest row)
FEATURES = Features(
    {
        "input_ids": ArrowSequence(Value("int32")),
        "label_positions": ArrowSequence(Value("int32")),
        "labels": ArrowSequence(Value("float32")),
    }
)


@dataclass(frozen=True)
class StepExample:
    """A trace with step labels: `spans[k]` is step k's [start, end) in `response`, `labels[k]` its label in [0, 1]
    (None: unlabelled); `outcome` the label of the whole trace (None: none)."""

    prompt: str
    response: str
    spans: tuple[Span, ...]
    labels: tuple[float | None, ...]
    outcome: float | None
    where: str  # "file, line N", for messages

    def __post_init__(self) -> None:
        assert len(self.spans) == len(self.labels), (self.where, len(self.spans), len(self.labels))


Reader = Callable[[Path, Task], list[StepExample]]
FORMATS: Registry[Reader] = Registry("data_format")


def _trace_label(labels: Sequence[float | None]) -> float | None:
    known = [y for y in labels if y is not None]
    return min(known) if known else None


@FORMATS.register("stepwise")
def read_stepwise(path: Path, task: Task) -> list[StepExample]:
    out = []
    for line, row in read_jsonl(path):
        prompt = require(row, "prompt", path, line, str)
        steps = require(row, "completions", path, line, list)
        labels = require(row, "labels", path, line, list)
        if not steps:
            raise DataError(path, line, "completions", "empty list of steps; a trace needs at least one step")
        for k, step in enumerate(steps):
            if not isinstance(step, str) or not step.strip():
                what = "blank" if isinstance(step, str) else type(step).__name__
                raise DataError(path, line, "completions", f"step {k} is {what}; every step must be non-blank text")
        if len(labels) != len(steps):
            raise DataError(path, line, "labels", f"{len(labels)} labels for {len(steps)} steps; lengths differ")
        values = []
        for k, y in enumerate(labels):
            if isinstance(y, bool):
                values.append(float(y))
            elif isinstance(y, int | float) and 0.0 <= y <= 1.0:
                values.append(float(y))
            else:
                raise DataError(path, line, "labels", f"label {k} is {y!r}; expected a bool or a number in [0, 1]")
        out.append(StepExample(prompt, "\n".join(steps), tuple(joined_spans(steps)), tuple(values),
                               _trace_label(values), f"{path}, line {line}"))  # fmt: skip
    return out


@FORMATS.register("processbench")
def read_processbench_labels(path: Path, task: Task) -> list[StepExample]:
    out = []
    for trace in read_processbench(path):  # file, line and field checks of its own
        if any(not step.strip() for step in trace.steps):
            raise DataError(path, None, "steps", f"trace {trace.id!r} has a blank step; every step needs text")
        first = trace.label
        labels = tuple(1.0 if first == NO_ERROR or k < first else 0.0 if k == first else None
                       for k in range(len(trace.steps)))  # fmt: skip
        prompt = task.prompt(Example(trace.id, trace.problem, ""))
        out.append(StepExample(prompt, "\n".join(trace.steps), tuple(joined_spans(trace.steps)), labels,
                               _trace_label(labels), f"{path}, trace {trace.id}"))  # fmt: skip
    return out


@FORMATS.register("samples")
def read_sample_labels(path: Path, task: Task) -> list[StepExample]:
    out = []
    for line, row in read_jsonl(path):
        prompt = require(row, "prompt", path, line, str)
        response = row.get("response")
        if not isinstance(response, str):
            raise DataError(path, line, "response", f"expected str, got {type(response).__name__}")
        first = row.get("first_error", "missing")
        if isinstance(first, bool) or not isinstance(first, int) or first < NO_ERROR:
            why = f"task {task.name!r} cannot check steps" if first is None else f"got {first!r}"
            raise DataError(path, line, "first_error", f"expected a step index or -1 (write it with `rairl sample`); "
                                                       f"{why}")  # fmt: skip
        correct = row.get("correct", True)
        if not isinstance(correct, bool):
            raise DataError(path, line, "correct", f"expected a bool, got {type(correct).__name__}")
        spans = tuple(task.step_spans(response))
        if not spans:
            raise DataError(path, line, "response", "no steps (empty response); a trace needs at least one step")
        if first > len(spans):
            raise DataError(path, line, "first_error", f"{first} is past the trace's {len(spans)} steps")
        labels = tuple(1.0 if first == NO_ERROR or k < first else 0.0 if k == first else None
                       for k in range(len(spans)))  # fmt: skip
        outcome = 0.0 if first == len(spans) or not correct else _trace_label(labels)
        out.append(StepExample(prompt, response, spans, labels, outcome, f"{path}, line {line}"))
    return out


def detect_format(path: Path) -> str:
    """The format of a file from the fields of its first row (one line naming the file when none fits)."""
    for line, row in read_jsonl(path):
        if "completions" in row or "labels" in row:
            return "stepwise"
        if "steps" in row or "label" in row:
            return "processbench"
        if "response" in row or "first_error" in row:
            return "samples"
        raise DataError(path, line, None, f"no format fits the fields {sorted(row)}: expected stepwise (prompt, "
                                          "completions, labels), processbench (problem, steps, label) or samples "
                                          "(prompt, response, first_error)")  # fmt: skip
    raise DataError(path, None, None, "no rows (the file is empty)")


def refuse_evaluation_only(path: str | os.PathLike) -> None:
    """ProcessBench and MR-GSM8K are read, never trained on (DESIGN §2.7)."""
    parts = set(Path(path).resolve().parts) | set(Path(path).parts)
    if held := sorted(parts & set(EVALUATION_ONLY)):
        raise ValueError(
            f"{path}: {held[0]}/ is evaluation-only data (DESIGN §2.7); a PRM is never trained on it: evaluate on it "
            "with `rairl localize --source file`, and train on other labels (your own stepwise rows, or `rairl "
            "sample` rows labelled by the task's checker)"
        )


def read_step_examples(paths: Sequence[str], task: Task, data_format: str = "auto") -> list[StepExample]:
    """Every labelled example of `paths`, each file read in `data_format` (auto: `detect_format`)."""
    out = []
    for name in paths:
        refuse_evaluation_only(name)
        path = Path(name)
        fmt = detect_format(path) if data_format == "auto" else data_format
        examples = FORMATS.lookup(fmt)(path, task)
        if not examples:
            raise DataError(path, None, None, "no labelled traces")
        out += examples
    return out


def encode_step_examples(tokenizer, examples: Sequence[StepExample], max_length: int | None = None) -> Dataset:
    """Rows `input_ids` (prompt + response + EOS, unpadded), `label_positions` (the token index of each labelled
    step's last token, and of EOS when the trace has a label) and `labels` (float32, one per position)."""
    rows = {"input_ids": [], "label_positions": [], "labels": []}
    for at in range(0, len(examples), ENCODE_CHUNK):
        chunk = examples[at : at + ENCODE_CHUNK]
        try:
            batch = encode_texts(tokenizer, [e.prompt for e in chunk], [e.response for e in chunk],
                                 [list(e.spans) for e in chunk], max_length)  # fmt: skip
        except ValueError as err:
            raise ValueError(f"{chunk[0].where} .. {chunk[-1].where}: {err}") from None
        lengths = batch.attention_mask.sum(1).tolist()
        for b, ex in enumerate(chunk):
            ends = batch.step_ends[b]
            positions = [t for t, y in zip(ends, ex.labels) if y is not None]
            labels = [float(y) for y in ex.labels if y is not None]
            if ex.outcome is not None:
                positions.append(lengths[b] - 1)  # EOS: the last response token
                labels.append(float(ex.outcome))
            rows["input_ids"].append(batch.input_ids[b, : lengths[b]].tolist())
            rows["label_positions"].append(positions)
            rows["labels"].append(labels)
    return Dataset.from_dict(rows, features=FEATURES)


def shuffle_labels(examples: Sequence[StepExample], seed: int) -> list[StepExample]:
    """The same traces with their label lists permuted across traces of the same step count (a control that keeps
    the labels' marginals and breaks their tie to the text)."""
    rng, by_length = random.Random(seed), {}
    for i, ex in enumerate(examples):
        by_length.setdefault(len(ex.spans), []).append(i)
    out = list(examples)
    for idx in by_length.values():
        perm = idx[:]
        rng.shuffle(perm)
        for i, j in zip(idx, perm):
            out[i] = StepExample(examples[i].prompt, examples[i].response, examples[i].spans, examples[j].labels,
                                 examples[j].outcome, examples[i].where)  # fmt: skip
    return out
