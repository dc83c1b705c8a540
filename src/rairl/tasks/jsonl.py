"""`jsonl`: any JSON Lines file of question / expert trace / answer, with the field names given as options.

`--question-field` and `--answer-field` are required in every row (a string, or a number for the answer);
`--trace-field` is optional per row: a row without it (or with null) has no expert response, so one file can
mix demonstrations and evaluation-only questions. A trace that does not already end in a `#### ANSWER` line
gets `#### <answer>` appended. Answers are compared by `answers.math_equal` (numbers as numbers, LaTeX and
expressions through math-verify).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rairl.io import DataError, require
from rairl.tasks.answers import math_equal
from rairl.tasks.base import Example
from rairl.tasks.files import FileTask, with_answer_line


class JsonlTask(FileTask):
    """Generic question/trace/answer files; the step splitter is the default (one line = one step)."""

    name = "jsonl"

    def __init__(self, data: str | os.PathLike | None, *, question_field: str, trace_field: str, answer_field: str):
        super().__init__(data)
        self.question_field, self.trace_field, self.answer_field = question_field, trace_field, answer_field

    def parse_row(self, row: dict[str, Any], path: Path, line: int, example_id: str) -> Example:
        question = require(row, self.question_field, path, line)
        answer = require(row, self.answer_field, path, line, (str, int, float))
        if isinstance(answer, bool):
            raise DataError(path, line, self.answer_field, "expected str or a number, got bool")
        answer = str(answer).strip()
        expert = None
        if row.get(self.trace_field) is not None:
            trace = require(row, self.trace_field, path, line).strip()
            has_answer_line = self.extract_answer(trace.rsplit("\n", 1)[-1]) is not None
            expert = trace if has_answer_line else with_answer_line(trace, answer)
        return Example(id=example_id, question=question.strip(), answer=answer, expert=expert)

    def is_correct(self, predicted: str | None, example: Example) -> bool:
        return math_equal(predicted, example.answer)
