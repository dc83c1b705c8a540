"""Perturbations: corrupt a reasoning trace and record the first step that changed (DESIGN §2.4).

A perturbation maps a response with steps `s_0..s_n` (non-blank lines, as `Task.step_spans`; the answer line
`#### N` is the last step) to a response `s'` and the index

    i* = min{i : s'_i ≠ s_i}

of its first changed step. Everything before `i*` is the expert's own text, so `i*` is the label of a
localisation benchmark and the corrupted trace a hard negative for the discriminator. Registered:

    operator   swap one operator of a step (`+` ↔ `-`, `*` → `+`/`-`/`/`, ...) so that its equation becomes
               false, recomputing nothing
    number     change one number of a step, recomputing nothing
    carry      change the result `c` of one equation `… = c`, then recompute every later equation that uses it
               from the wrong value (and the results that depend on those), and the final answer
    drop       delete one reasoning step
    answer     change the final answer: its first number, or its letter when it is a multiple-choice letter

Numbers and equations are found as `rairl.rewards.equations` defines them (GSM8K text, calculator annotations
kept in step with the visible text; arith's `a op b = c`). Numbers and operators inside annotations are not
chosen. A function returns None when it does not apply.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction

from rairl.registry import Registry
from rairl.rewards.equations import (
    NUMBER_RE,
    OPERATOR_RE,
    Equation,
    Span,
    decimal_places,
    decimal_text,
    evaluate,
    find_equations,
    nearby_numbers,
    number_value,
    other_number,
    outside_annotations,
    write_number,
)


@dataclass(frozen=True)
class Perturbed:
    """A corrupted response, the 0-based index of its first step that differs from the original, and the
    perturbation that made it."""

    response: str
    first_changed_step: int
    name: str


Perturbation = Callable[[str, random.Random], Perturbed | None]
PERTURBATIONS: Registry[Perturbation] = Registry("perturbation")
register = PERTURBATIONS.register
_CHOICE_RE = re.compile(r"(\s*####\s*\(?)([A-Za-z])(\)?\.?\s*)")
Edit = tuple[Span, str]  # replace the characters of a span by a text
_SWAPS = {"+": "-*", "-": "+*", "*": "+-/", "/": "*-", "x": "+-", "×": "+-", "÷": "×-"}


def _steps(response: str) -> tuple[list[str], list[int]]:
    """The response's lines and the line index of each step (non-blank line), as `Task.step_spans` splits."""
    lines = response.split("\n")
    return lines, [i for i, line in enumerate(lines) if line.strip()]


def _is_answer(line: str) -> bool:
    return line.lstrip().startswith("####")


def _reasoning_steps(lines: list[str], step_lines: list[int]) -> list[int]:
    """Indices (into `step_lines`) of the steps that are not the final answer line."""
    n = len(step_lines)
    return [i for i in range(n) if not (i == n - 1 and _is_answer(lines[step_lines[i]]))]


def _replace(text: str, edits: list[Edit]) -> str:
    """`text` with each span `(start, end)` replaced; spans do not overlap."""
    for (start, end), new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _with_line(lines: list[str], index: int, new_line: str) -> str:
    return "\n".join(lines[:index] + [new_line] + lines[index + 1 :])


# ---------------------------------------------------------------- carrying a wrong value forward


def _substitute(expression: str, carried: dict[Fraction, Fraction]) -> tuple[str, set[Fraction]]:
    """`expression` with the first occurrence of each carried value replaced by its new value, and the set of
    carried values it used. A carried value is consumed by its first later use, as a running total is: arith's
    `v_i op b = v_{i+1}` gets its `v_i` rewritten, not an operand `b` that happens to be equal."""
    edits, used = [], set()
    for m in NUMBER_RE.finditer(expression):
        old = number_value(m[0])
        if old in carried and old not in used:
            # Carried values are written results, so they have at most 4 decimals.
            edits.append((m.span(), decimal_text(carried[old], decimal_places(carried[old]), commas="," in m[0])))
            used.add(old)
    return _replace(expression, edits), used


def _result_edits(line: str, eq: Equation, value: Fraction) -> list[Edit] | None:
    """Edits writing `value` into every result span of `eq`, each like the number it replaces; None if one
    cannot be (a fraction where the text has an integer)."""
    texts = [write_number(value, line[a:b]) for a, b in eq.results]
    return None if None in texts else list(zip(eq.results, texts))


def _carry_edits(line: str, equations: list[Equation], carried: dict[Fraction, Fraction]) -> list[Edit] | None:
    """Edits recomputing each of `equations` (in order) that uses a carried value; updates `carried` (values
    used are consumed, changed results are added). None when a result cannot be written like the original."""
    edits = []
    for eq in equations:
        expression, used = _substitute(line[slice(*eq.expression)], carried)
        if not used:
            continue
        value = evaluate(expression)
        results = None if value is None else _result_edits(line, eq, value)
        if results is None:
            return None
        edits += [(eq.expression, expression), *results]
        if eq.mirror:
            edits.append((eq.mirror, _substitute(line[slice(*eq.mirror)], {k: carried[k] for k in used})[0]))
        for old in used:
            del carried[old]
        if value != (old_result := number_value(line[slice(*eq.results[0])])):
            carried[old_result] = value
    return edits


def _carry_answer(line: str, carried: dict[Fraction, Fraction]) -> str | None:
    """The answer line `#### N` with `N` replaced when it is a carried value."""
    m = NUMBER_RE.search(line)
    if m is None or number_value(m[0]) not in carried:
        return line
    new = write_number(carried[number_value(m[0])], m[0])
    return None if new is None else line[: m.start()] + new + line[m.end() :]


def _carry_from(lines: list[str], index: int, eq: Equation, wrong: Fraction) -> list[str] | None:
    """Lines `index..` with `eq`'s result (on line `index`) set to `wrong` and carried forward; None if some
    recomputed result cannot be written like the original."""
    line = lines[index]
    if (edits := _result_edits(line, eq, wrong)) is None:
        return None
    carried = {number_value(line[slice(*eq.results[0])]): wrong}
    rest = _carry_edits(line, [e for e in find_equations(line) if e.expression[0] >= eq.end], carried)
    if rest is None:
        return None
    changed = [_replace(line, edits + rest)]
    for later in lines[index + 1 :]:
        if _is_answer(later):
            changed.append(_carry_answer(later, carried))
        else:
            later_edits = _carry_edits(later, find_equations(later), carried)
            changed.append(None if later_edits is None else _replace(later, later_edits))
        if changed[-1] is None:
            return None
    return changed


@register("carry")
def _carry(response: str, rng: random.Random) -> Perturbed | None:
    lines, step_lines = _steps(response)
    sites = [(i, eq) for i in _reasoning_steps(lines, step_lines) for eq in find_equations(lines[step_lines[i]])]
    # Some wrong values give fractions downstream (35 / 7 with 35 -> 36): try others, then other equations.
    for step, eq in rng.sample(sites, len(sites)):
        index = step_lines[step]
        result = lines[index][slice(*eq.results[0])]
        for wrong in nearby_numbers(number_value(result), result, rng):
            if (changed := _carry_from(lines, index, eq, wrong)) is not None:
                return Perturbed("\n".join(lines[:index] + changed), step, "carry")
    return None


# ---------------------------------------------------------------- single edits


@register("operator")
def _operator(response: str, rng: random.Random) -> Perturbed | None:
    lines, step_lines = _steps(response)
    options = []
    for i in _reasoning_steps(lines, step_lines):
        line = lines[step_lines[i]]
        equations = find_equations(line)
        for op in OPERATOR_RE.finditer(line):
            if not outside_annotations(line, op.start(1)):
                continue
            eq = next((e for e in equations if e.expression[0] <= op.start(1) < e.expression[1]), None)
            for swap in _SWAPS[op[1]]:
                new_line = line[: op.start(1)] + swap + line[op.end(1) :]
                # The step must become false: skip swaps that keep its equation true (2+2=4 -> 2*2=4).
                result = number_value(line[slice(*eq.results[0])]) if eq else None
                if eq is not None and evaluate(new_line[slice(*eq.expression)]) == result:
                    continue
                options.append((i, new_line))
    if not options:
        return None
    step, new_line = rng.choice(options)
    return Perturbed(_with_line(lines, step_lines[step], new_line), step, "operator")


@register("number")
def _number(response: str, rng: random.Random) -> Perturbed | None:
    lines, step_lines = _steps(response)
    sites = [
        (i, m)
        for i in _reasoning_steps(lines, step_lines)
        for m in NUMBER_RE.finditer(lines[step_lines[i]])
        if outside_annotations(lines[step_lines[i]], m.start())
    ]
    if not sites:
        return None
    step, m = rng.choice(sites)
    line = lines[step_lines[step]]
    new_line = line[: m.start()] + other_number(m[0], rng) + line[m.end() :]
    return Perturbed(_with_line(lines, step_lines[step], new_line), step, "number")


@register("drop")
def _drop(response: str, rng: random.Random) -> Perturbed | None:
    lines, step_lines = _steps(response)
    # Dropping step i shifts step i+1 into its place; identical neighbours would hide the change at i.
    options = [i for i in range(len(step_lines) - 1) if lines[step_lines[i]] != lines[step_lines[i + 1]]]
    if not options:
        return None
    step = rng.choice(options)
    index = step_lines[step]
    return Perturbed("\n".join(lines[:index] + lines[index + 1 :]), step, "drop")


@register("answer")
def _answer(response: str, rng: random.Random) -> Perturbed | None:
    lines, step_lines = _steps(response)
    if not step_lines or not _is_answer(lines[step_lines[-1]]):
        return None
    line = lines[step_lines[-1]]
    if m := NUMBER_RE.search(line):
        new_line = line[: m.start()] + other_number(m[0], rng) + line[m.end() :]
    elif m := _CHOICE_RE.fullmatch(line):
        # A multiple-choice letter: another letter among A..D, or up to the gold letter if it lies beyond D.
        letters = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: max(4, ord(m[2].upper()) - 64)] if c != m[2].upper()]
        new_line = line[: m.start(2)] + rng.choice(letters) + line[m.end(2) :]
    else:
        return None
    step = len(step_lines) - 1
    return Perturbed(_with_line(lines, step_lines[step], new_line), step, "answer")


def perturb(response: str, rng: random.Random, names: Iterable[str] | None = None) -> Perturbed:
    """One perturbation, drawn uniformly from those in `names` (default: all) that apply to `response`.

    Raises ValueError for an unknown name, or when none of them applies.
    """
    names = list(PERTURBATIONS) if names is None else list(names)
    for name in names:
        PERTURBATIONS.lookup(name)
    for name in rng.sample(names, len(names)):
        if (out := PERTURBATIONS[name](response, rng)) is not None:
            return out
    raise ValueError(f"none of the perturbations {names} applies to the response {response[:120]!r}")
