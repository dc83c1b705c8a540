"""`countdown`: reach a target number from given numbers with `+ - * /` (the R-AIRL authors' splits).

Rows: `reward_model = {"nums": [int, ...], "target": int}`, the expert reasoning in `target` (a string) and the
expert's equation in `answer`. A proposed equation `e` is correct iff it is built only from integer literals,
`+ - * /` and parentheses, every literal comes from `nums` (each at most as often as it appears there) and
`value(e) = target` exactly (rational arithmetic; division by zero is wrong). A chain `e = c_1 = ... = c_k`
is accepted when `e` is as above and each `c_i` also evaluates to the target. Parsing goes through `ast` with a
whitelist of node types; nothing is ever evaluated by Python.
Expert response = the reasoning, then `#### <equation>`; None when the row's equation does not pass the check.
"""

from __future__ import annotations

import ast
import logging
import operator
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

from rairl.io import DataError, require
from rairl.tasks.base import Example
from rairl.tasks.files import FileTask, with_answer_line

logger = logging.getLogger(__name__)

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_ALLOWED_CHARS = re.compile(r"^[\d\s+\-*/()]+$")
_MAX_LENGTH = 200  # longer "equations" are not answers; also bounds the parser's recursion


def evaluate(expression: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the integer literals it uses.

    Raises ValueError for anything other than integers, `+ - * /` (also `×`, `÷`) and parentheses.
    """
    text = expression.replace("×", "*").replace("÷", "/").strip()
    if len(text) > _MAX_LENGTH or not _ALLOWED_CHARS.match(text):
        raise ValueError(f"not an arithmetic expression: {expression!r}")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, RecursionError, MemoryError):
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    used: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ValueError(f"division by zero in {expression!r}")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        raise ValueError(f"{type(node).__name__} is not allowed in {expression!r}")

    return walk(tree.body), used


def check_equation(equation: str | None, numbers: list[int], target: int) -> bool:
    """Whether `equation` reaches `target` using each of `numbers` at most once (see the module docstring)."""
    if equation is None or not equation.strip():
        return False
    first, *rest = equation.split("=")
    try:
        value, used = evaluate(first)
        if value != target or Counter(used) - Counter(numbers):
            return False
        return all(evaluate(part)[0] == target for part in rest)
    except ValueError:
        return False


def countdown_question(numbers: list[int], target: int) -> str:
    return (
        f"Using the numbers {numbers}, write an equation that equals {target}. You may use +, -, *, / and "
        f"parentheses, and each number at most once."
    )


def _optional_text(row: dict[str, Any], field: str, path: Path, line: int) -> str:
    value = row.get(field, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(path, line, field, f"expected str, got {type(value).__name__}")
    return value


class CountdownTask(FileTask):
    """Countdown files (`train.jsonl`, `eval.jsonl`, `test.jsonl`)."""

    name = "countdown"

    def parse_row(self, row: dict[str, Any], path: Path, line: int, example_id: str) -> Example:
        spec = require(row, "reward_model", path, line, dict)
        numbers = spec.get("nums")
        if not isinstance(numbers, list) or not numbers or not all(type(n) is int for n in numbers):
            raise DataError(path, line, "reward_model.nums", f"expected a non-empty list of integers, got {numbers!r}")
        target = spec.get("target")
        if type(target) is not int:
            raise DataError(path, line, "reward_model.target", f"expected an integer, got {target!r}")
        reasoning = _optional_text(row, "target", path, line)
        equation = _optional_text(row, "answer", path, line).strip()
        valid = check_equation(equation, numbers, target)
        if not valid:
            logger.warning(
                "%s, line %d: reference equation %r does not reach %d from %s; the row has no expert trace",
                path,
                line,
                equation[:80],
                target,
                numbers,
            )
        return Example(
            id=example_id,
            question=countdown_question(numbers, target),
            answer=equation if valid else str(target),
            expert=with_answer_line(reasoning, equation) if valid else None,
            meta={"numbers": numbers, "target": target},
        )

    def is_correct(self, predicted: str | None, example: Example) -> bool:
        return check_equation(predicted, example.meta["numbers"], example.meta["target"])
