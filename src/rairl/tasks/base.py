"""What a task is: prompt, expert trace, final-answer extraction, verifier, step splitter, step checker.

A *response* is the text the policy writes after the prompt: reasoning steps, one per line by default,
and a last line `#### ANSWER` (GSM8K style). A *trace* is prompt + response.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

ANSWER_MARK = "####"
_ANSWER_RE = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


def line_spans(response: str) -> list[tuple[int, int]]:
    """Character spans `[start, end)` of the non-blank lines: the default step splitter (one line = one step)."""
    spans, start = [], 0
    for line in response.split("\n"):
        end = start + len(line)
        if line.strip():
            spans.append((start, end))
        start = end + 1
    return spans


@dataclass(frozen=True)
class Example:
    """One problem. `expert` is the expert response (None for evaluation-only data without reasoning)."""

    id: str
    question: str
    answer: str
    expert: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Task(ABC):
    """Base class; a task registers itself in `rairl.tasks.TASKS` under `name`."""

    name: str = ""

    @property
    @abstractmethod
    def splits(self) -> tuple[str, ...]:
        """Names of the splits this task has."""

    @property
    def eval_splits(self) -> tuple[str, ...]:
        """Splits `rairl eval` reports by default: every split but `train` (or `train` if it is the only one)."""
        rest = tuple(s for s in self.splits if s != "train")
        return rest or self.splits

    @abstractmethod
    def examples(self, split: str) -> list[Example]:
        """The examples of `split` (e.g. "train", "test", "ood"); an unknown split raises ValueError."""

    step_boundary: str | None = "\n"  # what ends a step (`line_spans` splits on it); search stops a step there

    def prompt(self, example: Example) -> str:
        """Plain-text prompt (no chat template: templates that insert dates make scores depend on the calendar)."""
        return f"Question: {example.question}\nAnswer:\n"

    def extract_answer(self, response: str) -> str | None:
        """The final answer: text after the last `####`, or None when there is none."""
        found = _ANSWER_RE.findall(response)
        return found[-1] if found else None

    @abstractmethod
    def is_correct(self, predicted: str | None, example: Example) -> bool:
        """Whether an extracted answer matches the gold answer (never raw string equality)."""

    def verify(self, response: str, example: Example) -> bool:
        return self.is_correct(self.extract_answer(response), example)

    def step_spans(self, response: str) -> list[tuple[int, int]]:
        """Character spans `[start, end)` of the reasoning steps (default: `line_spans`)."""
        return line_spans(response)

    def split_steps(self, response: str) -> list[str]:
        return [response[a:b] for a, b in self.step_spans(response)]

    def first_error(self, response: str, example: Example) -> int | None:
        """0-based index of the first wrong step, -1 if every step is right; None if steps are not checkable."""
        return None
