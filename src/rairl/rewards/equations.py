"""Numbers and equations in GSM8K-style reasoning text: what the perturbations (`rairl.rewards.perturb`) edit.

- A *number* is `12`, `1,250`, `0.5`, or `-3`, where a leading `-` is a sign only if no operand precedes it
  (`7-9` is 7 minus 9, `=-2` is minus two).
- An *equation* is `expression = result`, the expression built from numbers, `+ - * / x × ÷` and parentheses;
  a GSM8K calculator annotation may sit between `=` and the result (`48/2 = <<48/2=24>>24`). An annotation
  directly followed by its visible result (`5 snakes * 6 = <<5*6=30>>30`) is an equation too, with the
  annotation's expression. arith's `a op b = c` steps are the simplest case.
Expressions are evaluated exactly, with fractions.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from fractions import Fraction

_DIGITS = r"\d+(?:,\d{3})*(?:\.\d+)?"
NUMBER_RE = re.compile(rf"(?<![\w.,])(?:(?<![^\s=+\-*/(×÷$<>:])-)?{_DIGITS}")
OPERATOR_RE = re.compile(r"(?<=[\d)])\s*([-+*/x×÷])\s*(?=[-$\d(])")  # group 1: a binary operator
ANNOTATION_RE = re.compile(r"<<(?P<lhs>[^<>=]*)=(?P<rhs>[^<>]*)>>")
_TERM = rf"\(*\s*\$?-?{_DIGITS}(?:\s*\))*"
_EQUATION_RE = re.compile(
    rf"(?<![\w.,$])(?P<lhs>{_TERM}(?:\s*[-+*/x×÷]\s*{_TERM})+)\s*=\s*\$?(?P<ann><<[^<>]*>>)?\$?(?P<rhs>-?{_DIGITS})"
)
_VISIBLE_RESULT_RE = re.compile(rf"\$?(?P<rhs>-?{_DIGITS})")
_AST_OPS = {
    ast.Add: Fraction.__add__,
    ast.Sub: Fraction.__sub__,
    ast.Mult: Fraction.__mul__,
    ast.Div: Fraction.__truediv__,
}

Span = tuple[int, int]


def number_value(text: str) -> Fraction:
    """Exact value of a number matched by `NUMBER_RE` (`"1,250.5"` -> 2501/2)."""
    return Fraction(text.replace(",", ""))


def decimal_text(value: Fraction, places: int, commas: bool = False) -> str:
    """`value` rounded to `places` decimals, with thousands commas if `commas`."""
    whole, frac = divmod(round(abs(value) * 10**places), 10**places)
    text = (f"{whole:,}" if commas else str(whole)) + (f".{frac:0{places}d}" if places else "")
    return ("-" if value < 0 else "") + text


def decimal_places(value: Fraction) -> int | None:
    """Fewest decimals (at most 4) that write `value` exactly; None if it needs more."""
    return next((p for p in range(5) if (value * 10**p).denominator == 1), None)


def write_number(value: Fraction, like: str) -> str | None:
    """`value` written like the number `like` (thousands commas kept); None when it needs decimals `like` has no
    room for: an integer stays an integer, a decimal may use up to 4 places."""
    places = decimal_places(value)
    if places is None or (places and "." not in like):
        return None
    return decimal_text(value, places, commas="," in like)


def nearby_numbers(value: Fraction, like: str, rng: random.Random) -> list[Fraction]:
    """Values a careless solver might write instead of `value`, shuffled: ±1..3 and +10 units of `like`'s last
    decimal place, never crossing zero."""
    unit = Fraction(1, 10 ** len(like.split(".")[1])) if "." in like else Fraction(1)
    options = [value + d * unit for d in (-3, -2, -1, 1, 2, 3, 10)]
    options = [v for v in options if v >= 0 or value < 0]
    rng.shuffle(options)
    return options


def other_number(text: str, rng: random.Random) -> str:
    """A different number written like `text`, with as many decimals."""
    places = len(text.split(".")[1]) if "." in text else 0
    return decimal_text(nearby_numbers(number_value(text), text, rng)[0], places, commas="," in text)


def evaluate(expression: str) -> Fraction | None:
    """Exact value of an arithmetic expression (`+ - * / x × ÷`, parentheses, unary minus, `$`, thousands commas);
    None if it is not one or divides by zero."""
    text = expression.replace("$", "").replace(",", "").translate(str.maketrans("x×÷", "**/"))
    try:
        tree = ast.parse(text.strip(), mode="eval").body
        return _evaluate_node(tree)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def _evaluate_node(node: ast.AST) -> Fraction:
    if isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
        return _AST_OPS[type(node.op)](_evaluate_node(node.left), _evaluate_node(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate_node(node.operand)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(repr(node.value))  # the literal's shortest repr is its text: exact for decimals
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


@dataclass(frozen=True)
class Equation:
    """Spans in one line: the expression, the annotation's copy of it (`mirror`, if any), and the result spans,
    the visible result first."""

    expression: Span
    mirror: Span | None
    results: tuple[Span, ...]

    @property
    def end(self) -> int:
        return self.results[0][1]


def find_equations(line: str) -> list[Equation]:
    """The equations of `line`, in order."""
    found, covered = [], []
    for m in _EQUATION_RE.finditer(line):
        if not outside_annotations(line, m.start()):
            continue  # an annotation's inside; handled with its visible result below
        ann = ANNOTATION_RE.fullmatch(m["ann"]) if m["ann"] else None
        offset = m.start("ann")
        mirror = (offset + ann.start("lhs"), offset + ann.end("lhs")) if ann else None
        results = (m.span("rhs"),) + (((offset + ann.start("rhs"), offset + ann.end("rhs")),) if ann else ())
        found.append(Equation(m.span("lhs"), mirror, results))
        covered.append(m.span())
    for a in ANNOTATION_RE.finditer(line):
        visible = _VISIBLE_RESULT_RE.match(line, a.end())
        if visible and not any(s <= a.start() < e for s, e in covered) and evaluate(a["lhs"]) is not None:
            found.append(Equation(a.span("lhs"), None, (visible.span("rhs"), a.span("rhs"))))
    return sorted(found, key=lambda eq: eq.end)


def outside_annotations(line: str, position: int) -> bool:
    """Whether `position` lies outside the line's calculator annotations `<<…>>`."""
    return not any(a.start() <= position < a.end() for a in ANNOTATION_RE.finditer(line))
