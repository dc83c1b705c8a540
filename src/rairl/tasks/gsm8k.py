"""`gsm8k`: grade-school math word problems (rows `{"question", "answer"}`, the answer ending in `#### N`).

Expert response = the reference solution with its calculator annotations `<<48/2=24>>` removed and its last
line rewritten as `#### N`; gold answer `N` = the text after `####` with thousands commas removed. Answers are
compared by `answers.math_equal` (numbers as numbers, anything else through math-verify). A response without a
`####` line (a chat model answering in its own words) gives its last number, as GSM8K's "flexible extract" does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rairl.io import DataError, require
from rairl.tasks.answers import math_equal, parse_number
from rairl.tasks.base import ANSWER_MARK, Example
from rairl.tasks.files import FileTask, with_answer_line

_ANNOTATION_RE = re.compile(r"<<[^<>]*>>")
_NUMBER_RE = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def strip_annotations(text: str) -> str:
    """`"48/2 = <<48/2=24>>24"` -> `"48/2 = 24"`."""
    return _ANNOTATION_RE.sub("", text)


class GSM8KTask(FileTask):
    """GSM8K files (`train.jsonl`, `test.jsonl`, `test_socratic.jsonl`); any split of that schema works."""

    name = "gsm8k"

    def parse_row(self, row: dict[str, Any], path: Path, line: int, example_id: str) -> Example:
        question = require(row, "question", path, line)
        solution = require(row, "answer", path, line)
        if ANSWER_MARK not in solution:
            raise DataError(path, line, "answer", f"no final answer: expected a last line '{ANSWER_MARK} N'")
        reasoning, _, final = solution.rpartition(ANSWER_MARK)
        gold = final.strip().replace(",", "")
        if parse_number(gold) is None:
            problem = f"final answer {final.strip()!r} after '{ANSWER_MARK}' is not a number"
            raise DataError(path, line, "answer", problem)
        return Example(
            id=example_id,
            question=question.strip(),
            answer=gold,
            expert=with_answer_line(strip_annotations(reasoning), gold),
        )

    def extract_answer(self, response: str) -> str | None:
        """The text after the last `####`; without one, the response's last number (commas and `$` removed)."""
        marked = super().extract_answer(response)
        if marked is not None or ANSWER_MARK in response:
            return marked
        numbers = _NUMBER_RE.findall(response)
        return numbers[-1].replace(",", "").replace("$", "").rstrip(".") if numbers else None

    def is_correct(self, predicted: str | None, example: Example) -> bool:
        return math_equal(predicted, example.answer)
