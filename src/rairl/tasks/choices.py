"""Multiple-choice tasks: options lettered `A.`, `B.`, ... in the question, gold answer = one letter.

The question shown to the policy is the stem followed by an `Answer Choices:` block, one option per line; the
expert response ends in `#### X` (X the gold letter). A prediction is right if it names the gold letter
(`B`, `(B)`, `B.`) or repeats the gold option's text (`answers.choice_equal`).
"""

from __future__ import annotations

import re
import string
from pathlib import Path

from rairl.io import DataError
from rairl.tasks.answers import choice_equal
from rairl.tasks.base import Example
from rairl.tasks.files import FileTask

LETTERS = string.ascii_uppercase
CHOICES_HEADER = "Answer Choices:"
_OPTION_LINE_RE = re.compile(r"^\s*\(?([A-Z])[.)]\s*(.*?)\s*$")
_EXPLANATION_RE = re.compile(r"\.?\s*Explanation:")


def format_choices(stem: str, options: list[str]) -> str:
    """`stem` + "\\nAnswer Choices:\\nA. ...\\nB. ..."."""
    if not 1 <= len(options) <= len(LETTERS):
        raise ValueError(f"need 1 to {len(LETTERS)} options, got {len(options)}")
    lines = [f"{letter}. {text}" for letter, text in zip(LETTERS, options)]
    return "\n".join([stem.rstrip(), CHOICES_HEADER, *lines])


def parse_choices(question: str) -> list[str]:
    """The options of a question that ends in an `Answer Choices:` block (empty list when there is none)."""
    _, header, block = question.rpartition(CHOICES_HEADER)
    if not header:
        return []
    options = []
    for line in block.strip().splitlines():
        m = _OPTION_LINE_RE.match(line)
        if m and m[1] == LETTERS[len(options)]:
            options.append(m[2])
        elif options and line.strip():
            options[-1] = f"{options[-1]} {line.strip()}"  # an option that wraps onto the next line
    return options


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def match_option(text: str, options: list[str]) -> int | None:
    """Index of the option whose text equals `text` (ignoring case, punctuation, spacing), or None."""
    target = _normalise(text)
    hits = [i for i, option in enumerate(options) if _normalise(option) == target]
    return hits[0] if len(hits) == 1 else None


def answer_letter(text: str, options: list[str]) -> str | None:
    """The letter an answer text names: `"C"`, `"C. <option C>"` or the text of one option (an
    `". Explanation: ..."` tail is ignored); None when it names no option unambiguously."""
    text = _EXPLANATION_RE.split(text, maxsplit=1)[0].strip()
    m = re.fullmatch(r"\(?([A-Z])\)?[.:]?(?:\s+(.*))?", text, re.DOTALL)
    if m and m[1] in LETTERS[: len(options)] and (not m[2] or match_option(m[2], options) == LETTERS.index(m[1])):
        return m[1]
    index = match_option(text, options)
    return None if index is None else LETTERS[index]


def gold_index(value: object, labels: str | list[str], path: Path, line: int, field: str) -> int:
    """0-based index of a gold letter among the option labels (raises `DataError` naming the field)."""
    if not isinstance(value, str) or not value.strip():
        raise DataError(path, line, field, f"expected an answer letter, got {value!r}")
    letter, labels = value.strip().strip("()").upper(), list(labels)
    if letter not in labels:
        raise DataError(path, line, field, f"answer {value!r} is not one of the option letters {labels}")
    return labels.index(letter)


class ChoiceTask(FileTask):
    """A file task whose examples carry `meta["options"]` and a gold letter as `answer`."""

    def is_correct(self, predicted: str | None, example: Example) -> bool:
        return choice_equal(predicted, example.answer, example.meta["options"])
