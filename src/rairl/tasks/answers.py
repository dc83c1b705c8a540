"""Answer verification: numbers compared as numbers, math through `math-verify`, choices by letter or text."""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$", re.IGNORECASE)


def parse_number(text: str | None) -> Fraction | None:
    """`"1,000"`, `"1000"`, `"1000.0"`, `"$1,000"` and `"50%"` all parse; anything else gives None."""
    if text is None:
        return None
    cleaned = text.strip().strip(".").replace(",", "").replace("$", "").replace(" ", "")
    cleaned = cleaned.removesuffix("%")
    if not _NUMBER_RE.match(cleaned):
        return None
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(predicted: str | None, gold: str) -> bool:
    a, b = parse_number(predicted), parse_number(gold)
    return a is not None and b is not None and a == b


def math_equal(predicted: str | None, gold: str) -> bool:
    """Numeric comparison first; otherwise symbolic equivalence with `math-verify`."""
    if predicted is None or not predicted.strip():
        return False
    if numbers_equal(predicted, gold):
        return True
    if parse_number(predicted) is not None and parse_number(gold) is not None:
        return False
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${gold}$"), parse(f"${predicted}$")))
    except Exception:  # math-verify raises on unparseable input; unparseable means not equal
        return False


def choice_equal(predicted: str | None, gold_letter: str, options: list[str]) -> bool:
    """A multiple-choice answer is right if it is the gold letter (`B`, `(B)`, `B.`) or the gold option's text."""
    if predicted is None:
        return False
    text = predicted.strip()
    # A bare letter ("B", "(B)", "B.") or a lettered option ("B. text", "(B) text", "B) text", "B: text").
    letter = re.fullmatch(r"\(?([A-Za-z])\)?[.:]?", text) or re.match(r"\(?([A-Za-z])[.):]\s", text)
    if letter:
        return letter.group(1).upper() == gold_letter.upper()
    index = ord(gold_letter.upper()) - ord("A")
    if 0 <= index < len(options):
        return " ".join(text.lower().split()) == " ".join(options[index].lower().split())
    return False
