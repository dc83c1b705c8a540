"""`medreason`: medical multiple choice, with knowledge-graph-grounded CoT where the data has it.

Two row shapes, told apart per row:
- **CoT rows** (the MedReason schema, `../shared/data/medreason/README.md`): `question`, `reasoning`, `answer`.
  The options come from an `Answer Choices:` block, either at the end of `question` (the R-AIRL authors'
  splits) or in a separate `options` field (the raw MedReason rows, where `answer` also carries an
  `". Explanation: ..."` tail). `answer` is the option text (or a letter); it must name exactly one option.
  Expert response = `reasoning`, then `#### X` (X the gold letter).
- **Evaluation rows** (MedQA, Medbullets, MedXpertQA, HLE in `../shared/data/medreason_eval/`): `question`,
  `options` as an object `{"A": text, ...}`, the gold letter in `answer_idx` (or `label`); no reasoning, so
  no expert: these splits are evaluation-only. Empty options are dropped; options whose letters skip (a few
  HLE rows) are shown re-lettered A, B, C, ... in letter order, and the gold letter moves with its option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rairl.io import DataError, require
from rairl.tasks.base import Example
from rairl.tasks.choices import (
    CHOICES_HEADER,
    LETTERS,
    ChoiceTask,
    answer_letter,
    format_choices,
    gold_index,
    parse_choices,
)
from rairl.tasks.files import with_answer_line

_GOLD_LETTER_FIELDS = ("answer_idx", "label")


def _options_from_object(raw: dict, path: Path, line: int) -> tuple[list[str], list[str]]:
    """`{"A": text, "B": text, ...}` -> (texts, labels), in letter order, empty options left out.

    Labels may skip letters (three HLE rows use e.g. A-J then P, one has an empty option H); the options are
    shown re-lettered A, B, C, ... and the gold letter follows its option.
    """
    if not raw or not all(len(k) == 1 and k in LETTERS for k in raw):
        raise DataError(path, line, "options", f"expected single-letter keys A, B, C, ..., got {sorted(raw)}")
    if not all(isinstance(text, str) for text in raw.values()):
        raise DataError(path, line, "options", "every option must be a string")
    labels = [k for k in sorted(raw) if raw[k].strip()]
    if not labels:
        raise DataError(path, line, "options", "every option is empty")
    return [raw[k].strip() for k in labels], labels


def _stem_and_options(row: dict[str, Any], question: str, path: Path, line: int) -> tuple[str, list[str], list[str]]:
    """(question stem, option texts, option labels as the data names them)."""
    raw = row.get("options")
    if isinstance(raw, dict):
        return (question, *_options_from_object(raw, path, line))
    if isinstance(raw, str):
        block = raw if CHOICES_HEADER in raw else f"{CHOICES_HEADER}\n{raw}"
        options, field = parse_choices(block), "options"
    elif raw is None:
        options, field = parse_choices(question), "question"
        question = question.rpartition(CHOICES_HEADER)[0] or question
    else:
        raise DataError(path, line, "options", f"expected an object or a string, got {type(raw).__name__}")
    if not options:
        raise DataError(path, line, field, f"no options found: expected an '{CHOICES_HEADER}' block of 'A. ...' lines")
    return question, options, list(LETTERS[: len(options)])


class MedReasonTask(ChoiceTask):
    """MedReason CoT splits and/or the medical MCQ evaluation sets (one `<split>.jsonl` per split)."""

    name = "medreason"

    def parse_row(self, row: dict[str, Any], path: Path, line: int, example_id: str) -> Example:
        question = require(row, "question", path, line)
        stem, options, labels = _stem_and_options(row, question, path, line)
        letter_field = next((f for f in _GOLD_LETTER_FIELDS if f in row), None)
        if letter_field is not None:
            letter = LETTERS[gold_index(row[letter_field], labels, path, line, letter_field)]
        else:
            text = require(row, "answer", path, line)
            letter = answer_letter(text, options)
            if letter is None:
                raise DataError(
                    path,
                    line,
                    "answer",
                    f"{text[:80]!r} names none of the options (or several): {options}"[:400],
                )
        reasoning = require(row, "reasoning", path, line) if "reasoning" in row else None
        return Example(
            id=example_id,
            question=format_choices(stem.strip(), options),
            answer=letter,
            expert=with_answer_line(reasoning, letter) if reasoning is not None else None,
            meta={"options": options},
        )
