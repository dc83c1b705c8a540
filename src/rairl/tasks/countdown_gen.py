"""`countdown_gen`: seeded Countdown puzzles with short checkable traces, sized for the embedded tiny model.

A puzzle is a multiset of numbers and a target: reach the target with `+ - *` (and `/` if enabled), each number
used at most once. It is made from an `arith` chain `v_{i+1} = v_i op_i b_i` (same generator, same split seeds and
disjointness): numbers `{v_0, b_1, ..., b_n}` in shuffled order, target `v_n`. Unlike `arith`, the question names no
operation and no order: the policy has to search. The expert response is the chain, one step per line, then the
equation it found:

    3+4=7
    7*2=14
    #### (3+4)*2

Correctness is `countdown.check_equation` (exact arithmetic, numbers from the puzzle). `first_error`: step `i`
`a op b = c` is wrong when `a` or `b` is neither an unused puzzle number nor an unused earlier result, or when
`c ≠ a op b` exactly; after the steps the answer line must be the last and pass the check (a missing answer line
is wrong where it should stand). The OOD split has more numbers (`ood_min_ops + 1` to `ood_max_ops + 1`); the shift
split asks in-distribution puzzles in new words ("Reach 14 from the numbers 3, 4, 2.").
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable
from fractions import Fraction

from rairl.tasks.arith import ANSWER_LINE, STEP_RE, ArithProblem, ArithTask
from rairl.tasks.base import Example
from rairl.tasks.countdown import check_equation

_OPS = {"+": Fraction.__add__, "-": Fraction.__sub__, "*": Fraction.__mul__, "/": Fraction.__truediv__}


def puzzle_numbers(problem: ArithProblem) -> list[int]:
    return [problem.start, *(b for _, b in problem.ops)]


def equation(problem: ArithProblem) -> str:
    """The chain as one expression, left to right, with parentheses only where precedence needs them."""
    text, low = str(problem.start), False
    for op, b in problem.ops:
        if op in "*/" and low:
            text = f"({text})"
        text, low = f"{text}{op}{b}", op in "+-"
    return text


def check_steps(steps: list[str], numbers: list[int], target: int) -> int:
    """0-based index of the first wrong step (the answer line counts as the last step), -1 if all are right."""
    available = Counter(Fraction(n) for n in numbers)
    for i, step in enumerate(steps):
        answer = ANSWER_LINE.fullmatch(step)
        if answer:
            return -1 if i == len(steps) - 1 and check_equation(answer[1], numbers, target) else i
        m = STEP_RE.match(step)
        if not m or m[2] not in _OPS:
            return i
        a, b, c = Fraction(int(m[1])), Fraction(int(m[3])), Fraction(int(m[4]))
        available[a] -= 1
        available[b] -= 1
        if available[a] < 0 or available[b] < 0 or (m[2] == "/" and b == 0) or _OPS[m[2]](a, b) != c:
            return i
        available[c] += 1
    return len(steps)


class CountdownGenTask(ArithTask):
    """Seeded Countdown puzzles. Splits: train, validation, test (in distribution), shift (new words) and ood (more
    numbers)."""

    name = "countdown_gen"

    def key(self, problem: ArithProblem) -> Hashable:
        return tuple(sorted(puzzle_numbers(problem))), problem.values()[-1]

    def example(self, problem: ArithProblem, rng: random.Random, example_id: str, shifted: bool = False) -> Example:
        """The puzzle of `problem`; `shifted`: asked in words no training question uses."""
        numbers = puzzle_numbers(problem)
        rng.shuffle(numbers)
        target, solution = problem.values()[-1], equation(problem)
        listed = ", ".join(map(str, numbers))
        return Example(
            id=example_id,
            question=f"Reach {target} from the numbers {listed}." if shifted else f"Use {listed} to make {target}.",
            answer=solution,
            expert=problem.expert(answer=solution),
            meta={"problem": problem, "numbers": numbers, "target": target, "n_steps": len(problem.ops)},
        )

    def is_correct(self, predicted: str | None, example: Example) -> bool:
        return check_equation(predicted, example.meta["numbers"], example.meta["target"])

    def first_error(self, response: str, example: Example) -> int | None:
        return check_steps(self.split_steps(response), example.meta["numbers"], example.meta["target"])
