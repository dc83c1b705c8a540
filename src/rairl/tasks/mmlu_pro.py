"""`mmlu_pro`: MMLU-Pro multiple choice (up to 10 options, answer letter A-J).

Rows: `question`, `options` (list of str), `answer` (gold letter), optional `answer_index`, `cot_content`,
`question_id`, `category`. The gold is the `answer` letter (the upstream row 3983 has a conflicting
`answer_index`; a mismatch is logged, never trusted). The validation split's worked CoT
`"A: Let's think step by step. ... The answer is (X)."` becomes the expert response `"Let's think ... \\n#### X"`;
rows without a CoT (the test split) have no expert. The validation file pads options with "N/A" to ten
entries; trailing padding after the gold option is dropped.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from rairl.io import DataError, require
from rairl.tasks.base import Example
from rairl.tasks.choices import LETTERS, ChoiceTask, format_choices, gold_index
from rairl.tasks.files import with_answer_line

logger = logging.getLogger(__name__)

_PADDING = "N/A"
_COT_PREFIX_RE = re.compile(r"^\s*A:\s*")
_COT_ANSWER_RE = re.compile(r"The answer is \(?([A-Z])\)?\.?\s*$")


def cot_response(cot: str, letter: str, path: Path, line: int) -> str:
    """Map a CoT ending in "The answer is (X)." to the response format ending in `#### X`."""
    reasoning = _COT_PREFIX_RE.sub("", cot, count=1)
    m = _COT_ANSWER_RE.search(reasoning)
    if m:
        if m[1] != letter:
            raise DataError(path, line, "cot_content", f"the CoT concludes ({m[1]}) but the gold answer is {letter}")
        reasoning = reasoning[: m.start()]
    return with_answer_line(reasoning, letter)


class MMLUProTask(ChoiceTask):
    """MMLU-Pro files (`validation.jsonl` with CoT, `test.jsonl` without); `rairl eval` reports `test`."""

    name = "mmlu_pro"

    @property
    def eval_splits(self) -> tuple[str, ...]:
        # validation holds the 70 CoT demonstrations (the training data here), so it is not an evaluation split.
        return ("test",) if "test" in self.splits else super().eval_splits

    def parse_row(self, row: dict[str, Any], path: Path, line: int, example_id: str) -> Example:
        question = require(row, "question", path, line)
        options = require(row, "options", path, line, list)
        if not options or len(options) > len(LETTERS) or not all(isinstance(o, str) for o in options):
            raise DataError(path, line, "options", f"expected 1 to {len(LETTERS)} strings, got {options!r}"[:300])
        index = gold_index(require(row, "answer", path, line), LETTERS[: len(options)], path, line, "answer")
        letter = LETTERS[index]
        if row.get("answer_index", index) != index:
            logger.warning(
                "%s, line %d: answer %s disagrees with answer_index %r; using the letter",
                path,
                line,
                letter,
                row["answer_index"],
            )
        options = [o.strip() for o in options]
        while len(options) > index + 1 and options[-1] == _PADDING:
            options.pop()
        cot = row.get("cot_content") or ""
        if not isinstance(cot, str):
            raise DataError(path, line, "cot_content", f"expected str, got {type(cot).__name__}")
        return Example(
            id=example_id,
            question=format_choices(question.strip(), options),
            answer=letter,
            expert=cot_response(cot, letter, path, line) if cot.strip() else None,
            meta={"options": options, "question_id": row.get("question_id"), "category": row.get("category")},
        )
