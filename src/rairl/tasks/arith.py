"""`arith`, the embedded default task: seeded multi-step arithmetic word problems with GSM8K-style traces.

A problem starts from a value `v_0` and applies `n` operations `v_{i+1} = v_i op_i b_i`. The expert response
writes one step per line, `v_i op_i b_i = v_{i+1}`, then `#### v_n`. Every step is machine-checkable, so any
response, the policy's included, gets the index of its first wrong step (`first_error`).
The in-distribution splits have `min_ops..max_ops` operations; `shift` is just outside them: problems drawn as the
in-distribution ones (the same traces), one operation of each asked in words the policy never read in training
(`SHIFT_PHRASES`: "receives 3 more" where training says "gets 3 more"); `ood` is far outside: more operations
(`ood_min_ops..ood_max_ops`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Hashable
from dataclasses import dataclass

from rairl.tasks.answers import numbers_equal
from rairl.tasks.base import Example, Task

_NAMES = ["Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jo", "Kim", "Lu", "Max", "Ned", "Ola", "Pat"]
_ITEMS = ["apples", "coins", "stamps", "books", "shells", "cards", "marbles", "pens"]
_PHRASES = {
    "+": ["gets {b} more", "buys {b} more", "finds {b} more"],
    "-": ["loses {b}", "sells {b}", "gives away {b}"],
    "*": ["multiplies them by {b}", "gets {b} times as many"],
    "/": ["splits them into {b} piles and keeps one"],
}
# the shift split's wording of each operation: verbs no training question uses
SHIFT_PHRASES = {
    "+": ["receives {b} more", "earns {b} more"],
    "-": ["drops {b}", "spends {b}"],
    "*": ["ends up with {b} times as many"],
    "/": ["shares them among {b} and keeps one share"],
}
ANSWER_LINE = re.compile(r"\s*####\s*(.+?)\s*")  # a step that is the answer line (fullmatch)
STEP_RE = re.compile(r"^\s*(-?\d+)\s*([-+*/])\s*(-?\d+)\s*=\s*(-?\d+)\s*$")
MAX_PROBLEMS = 10**7  # problems per split: more would be generated (and held) for minutes, then likely refused
_SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3, "ood": 4, "shift": 5}
_DISJOINT_FROM = {
    "train": (),
    "validation": ("train",),
    "test": ("train", "validation"),
    "ood": ("train",),
    "shift": ("train",),
}


def apply(op: str, a: int, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]


@dataclass(frozen=True)
class ArithProblem:
    start: int
    ops: tuple[tuple[str, int], ...]  # ((op, operand), ...)

    def values(self) -> list[int]:
        values = [self.start]
        for op, b in self.ops:
            values.append(apply(op, values[-1], b))
        return values

    def expert(self, answer: str | None = None) -> str:
        """The steps `v_i op_i b_i = v_{i+1}`, then `#### ANSWER` (default: the final value)."""
        v = self.values()
        lines = [f"{v[i]}{op}{b}={v[i + 1]}" for i, (op, b) in enumerate(self.ops)]
        return "\n".join(lines + [f"#### {v[-1] if answer is None else answer}"])


def _allowed_ops(value: int, b: int, ops: str, max_value: int) -> list[str]:
    """Operations that keep the running value inside [0, max_value] (and divisions exact)."""
    allowed = []
    for op in ops:
        if op == "/" and (b < 2 or value % b):
            continue
        if op == "*" and b < 2:
            continue
        if 0 <= apply(op, value, b) <= max_value:
            allowed.append(op)
    return allowed


def generate_problem(rng: random.Random, n_steps: int, max_operand: int, ops: str, max_value: int) -> ArithProblem:
    start = rng.randint(1, max_operand)
    steps: list[tuple[str, int]] = []
    value = start
    while len(steps) < n_steps:
        b = rng.randint(1, max_operand)
        allowed = _allowed_ops(value, b, ops, max_value)
        if not allowed:
            continue
        op = rng.choice(allowed)
        steps.append((op, b))
        value = apply(op, value, b)
    return ArithProblem(start, tuple(steps))


def word_problem(problem: ArithProblem, rng: random.Random, shifted: bool = False) -> str:
    """The question; `shifted`: one operation, drawn at random, in `SHIFT_PHRASES`' words, the others as in training."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    new = rng.randrange(len(problem.ops)) if shifted else -1
    tables = [SHIFT_PHRASES if i == new else _PHRASES for i in range(len(problem.ops))]
    steps = ", then ".join(rng.choice(t[op]).format(b=b) for t, (op, b) in zip(tables, problem.ops))
    return f"{name} has {problem.start} {item}, {steps}. How many {item} now?"


def check_steps(response_steps: list[str], problem: ArithProblem) -> int:
    """0-based index of the first wrong step (the answer line counts as the last step), -1 if all are right.

    Step i must read `v_i op_i b_i = v_{i+1}` with the problem's values; step n must be `#### v_n`.
    A missing step is wrong at the index where it should stand.
    """
    values = problem.values()
    for i, (op, b) in enumerate(problem.ops):
        if i >= len(response_steps):
            return i
        m = STEP_RE.match(response_steps[i])
        if not m or (int(m[1]), m[2], int(m[3]), int(m[4])) != (values[i], op, b, values[i + 1]):
            return i
    n = len(problem.ops)
    if n >= len(response_steps):
        return n
    answer = ANSWER_LINE.fullmatch(response_steps[n])
    if not answer or not numbers_equal(answer[1], str(values[-1])) or len(response_steps) > n + 1:
        return n
    return -1


class ArithTask(Task):
    """Seeded arithmetic word problems. Splits: train, validation, test (in distribution), shift (the same kind of
    problem in new words) and ood (more steps)."""

    name = "arith"
    splits = tuple(_SPLIT_SEEDS)
    eval_splits = ("test", "shift", "ood")

    def __init__(
        self,
        min_ops: int = 2,
        max_ops: int = 4,
        ood_min_ops: int = 5,
        ood_max_ops: int = 6,
        max_operand: int = 9,
        ops: str = "+-*",
        max_value: int = 20,
        n_train: int = 5000,
        n_eval: int = 300,
        seed: int = 0,
    ):
        if not 1 <= min_ops <= max_ops:
            raise ValueError(f"{self.name}: need 1 <= min_ops <= max_ops, got {min_ops}, {max_ops}")
        if not max_ops < ood_min_ops <= ood_max_ops:
            raise ValueError(
                f"{self.name}: the OOD split must have more steps than training: got max_ops={max_ops}, "
                f"ood_min_ops={ood_min_ops}, ood_max_ops={ood_max_ops}"
            )
        if not (1 <= n_train <= MAX_PROBLEMS and 1 <= n_eval <= MAX_PROBLEMS and max_operand >= 1):
            raise ValueError(
                f"{self.name}: need 1 <= n_train, n_eval <= {MAX_PROBLEMS:,} (every problem is generated up front) "
                f"and max_operand >= 1, got {n_train}, {n_eval}, {max_operand}"
            )
        if not ops or set(ops) - set("+-*/"):
            raise ValueError(f"{self.name}: unknown operation(s) {sorted(set(ops) - set('+-*/'))} in ops={ops!r}; "
                             "choose one or more of '+-*/'")  # fmt: skip
        self.min_ops, self.max_ops = min_ops, max_ops
        self.ood_min_ops, self.ood_max_ops = ood_min_ops, ood_max_ops
        self.max_operand, self.ops, self.max_value = max_operand, ops, max_value
        self.n_train, self.n_eval, self.seed = n_train, n_eval, seed
        self._cache: dict[str, list[Example]] = {}

    def examples(self, split: str) -> list[Example]:
        if split not in _SPLIT_SEEDS:
            raise ValueError(f"{self.name}: unknown split {split!r}; known splits: {sorted(_SPLIT_SEEDS)}")
        if split not in self._cache:
            self._cache[split] = self._generate(split)
        return self._cache[split]

    def _generate(self, split: str) -> list[Example]:
        rng = random.Random(self.seed * 1000 + _SPLIT_SEEDS[split])
        lo, hi = (self.ood_min_ops, self.ood_max_ops) if split == "ood" else (self.min_ops, self.max_ops)
        # Problems (numbers and operations) are distinct within a split, and an evaluation split never repeats
        # a problem of the splits it is compared against (_DISJOINT_FROM): no train/test or validation/test overlap.
        seen = {self.key(ex.meta["problem"]) for other in _DISJOINT_FROM[split] for ex in self.examples(other)}
        count = self.n_train if split == "train" else self.n_eval
        out: list[Example] = []
        attempts = 0
        while len(out) < count:
            problem = generate_problem(rng, rng.randint(lo, hi), self.max_operand, self.ops, self.max_value)
            attempts += 1
            if self.key(problem) in seen:
                if attempts > 100 * count:
                    raise ValueError(
                        f"{self.name}: found only {len(out)} of {count} distinct {split} problems not in "
                        f"{list(_DISJOINT_FROM[split])}; raise max_operand or max_ops, or lower n_train/n_eval"
                    )
                continue
            seen.add(self.key(problem))
            out.append(self.example(problem, rng, f"{self.name}-{split}-{len(out)}", shifted=split == "shift"))
        return out

    def key(self, problem: ArithProblem) -> Hashable:
        """What makes two problems the same (no split repeats one, no evaluation split shares one with training)."""
        return problem

    def example(self, problem: ArithProblem, rng: random.Random, example_id: str, shifted: bool = False) -> Example:
        """The example of `problem`; `shifted`: asked in the shift split's words."""
        return Example(
            id=example_id,
            question=word_problem(problem, rng, shifted),
            answer=str(problem.values()[-1]),
            expert=problem.expert(),
            meta={"problem": problem, "n_steps": len(problem.ops)},
        )

    def is_correct(self, predicted: str | None, example: Example) -> bool:
        return numbers_equal(predicted, example.answer)

    def first_error(self, response: str, example: Example) -> int | None:
        return check_steps(self.split_steps(response), example.meta["problem"])
