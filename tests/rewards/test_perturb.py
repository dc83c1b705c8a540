import json
import random
import re
from collections import Counter

import pytest

from rairl.rewards.equations import evaluate, find_equations, number_value
from rairl.rewards.perturb import PERTURBATIONS, Perturbed, perturb
from rairl.tasks.arith import ArithTask

TASK = ArithTask(n_train=300, n_eval=100)
DIVISION = ArithTask(ops="+-*/", max_operand=12, n_train=200, n_eval=100)
ARITH = [(TASK, ex) for ex in TASK.examples("train") + TASK.examples("ood")]
ARITH += [(DIVISION, ex) for ex in DIVISION.examples("train") + DIVISION.examples("ood")]


def first_difference(a: str, b: str) -> int | None:
    """Index of the first step (non-blank line) that differs, or where one trace runs out; None if equal."""
    sa, sb = TASK.split_steps(a), TASK.split_steps(b)
    for i, (x, y) in enumerate(zip(sa, sb)):
        if x != y:
            return i
    return None if len(sa) == len(sb) else min(len(sa), len(sb))


def test_registry_names():
    assert set(PERTURBATIONS) == {"operator", "number", "carry", "drop", "answer"}


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_recorded_step_is_the_first_changed_step_on_arith_traces(name):
    rng = random.Random(0)
    for task, ex in ARITH:
        out = PERTURBATIONS[name](ex.expert, rng)
        assert out is not None, f"{name} does not apply to {ex.expert!r}"
        assert out.name == name
        assert first_difference(ex.expert, out.response) == out.first_changed_step, (ex.expert, out)
        # The step checker agrees: the prefix is right and the recorded step is wrong.
        assert task.first_error(out.response, ex) == out.first_changed_step, (ex.expert, out)


def test_carry_recomputes_later_steps_from_the_wrong_value():
    rng = random.Random(0)
    step_re = re.compile(r"^(-?\d+)([-+*/])(-?\d+)=(-?\d+)$")
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
    for _, ex in ARITH:
        out = PERTURBATIONS["carry"](ex.expert, rng)
        steps, original = TASK.split_steps(out.response), TASK.split_steps(ex.expert)
        k = out.first_changed_step
        wrong = int(step_re.match(steps[k])[4])
        assert wrong != int(step_re.match(original[k])[4])
        previous = wrong
        for step, before in zip(steps[k + 1 : -1], original[k + 1 : -1]):
            a, op, b, c = step_re.match(step).groups()
            # The next step starts from the wrong value, keeps its own operation and operand, and is computed right.
            assert int(a) == previous
            assert (op, b) == step_re.match(before).groups()[1:3]
            assert int(c) == ops[op](int(a), int(b))
            previous = int(c)
        assert steps[-1] == f"#### {previous}"


def test_carry_only_rewrites_the_running_value_not_an_equal_operand():
    # The carried 6 is the first operand of step 1; its second operand 6 comes from the problem.
    out = PERTURBATIONS["carry"]("3+3=6\n6+6=12\n#### 12", random.Random(0))
    if out.first_changed_step == 0:
        w = int(out.response.split("\n")[0].split("=")[1])
        assert out.response == f"3+3={w}\n{w}+6={w + 6}\n#### {w + 6}"


def test_operator_never_leaves_a_true_equation():
    # 2+2=4: '+' -> '*' would still be true, so the only choice is '-'.
    for seed in range(10):
        out = PERTURBATIONS["operator"]("2+2=4\n#### 4", random.Random(seed))
        assert out == Perturbed("2-2=4\n#### 4", 0, "operator")


def test_drop_skips_a_step_that_equals_the_next_one():
    out = PERTURBATIONS["drop"]("x is 1\nx is 1\n#### 1", random.Random(0))
    assert out == Perturbed("x is 1\n#### 1", 1, "drop")
    assert PERTURBATIONS["drop"]("#### 1", random.Random(0)) is None


def test_blank_lines_do_not_count_as_steps():
    response = "1+2=3\n\n3+4=7\n\n#### 7"
    out = PERTURBATIONS["answer"](response, random.Random(0))
    assert out.first_changed_step == 2
    assert out.response.startswith("1+2=3\n\n3+4=7\n\n#### ")
    assert first_difference(response, out.response) == 2


def test_answer_needs_an_answer_line_with_a_number_or_a_choice():
    assert PERTURBATIONS["answer"]("1+2=3", random.Random(0)) is None
    assert PERTURBATIONS["answer"]("so\n#### x+y", random.Random(0)) is None
    letters = {PERTURBATIONS["answer"]("so\n#### B", random.Random(seed)).response for seed in range(30)}
    assert letters == {"so\n#### A", "so\n#### C", "so\n#### D"}
    letters = {PERTURBATIONS["answer"]("#### (G)", random.Random(seed)).response[6] for seed in range(60)}
    assert letters == set("ABCDEF")


def test_numbers_keep_their_format():
    rng = random.Random(0)
    for _ in range(20):
        out = PERTURBATIONS["number"]("It costs $1,250.50 in all.\n#### 1250.5", rng)
        assert re.fullmatch(r"It costs \$\d,\d{3}\.\d\d in all\.\n#### 1250\.5", out.response), out.response
        assert out.first_changed_step == 0


def test_perturb_picks_among_applicable_perturbations():
    rng = random.Random(0)
    counts = Counter(perturb(ex.expert, rng).name for _, ex in ARITH)
    assert set(counts) == set(PERTURBATIONS)
    # Only 'drop' and 'answer' apply to a trace without numbers in its reasoning.
    names = {perturb("First think.\nThen answer.\n#### C", rng).name for _ in range(30)}
    assert names == {"drop", "answer"}


def test_perturb_is_deterministic_given_the_seed():
    expert = ARITH[0][1].expert
    assert perturb(expert, random.Random(7)) == perturb(expert, random.Random(7))


def test_perturb_errors():
    with pytest.raises(ValueError, match=r"unknown perturbation 'cary'.*Did you mean 'carry'"):
        perturb("1+2=3\n#### 3", random.Random(0), names=["cary"])
    with pytest.raises(ValueError, match="none of the perturbations"):
        perturb("no numbers here", random.Random(0), names=["number", "operator"])


def gsm8k_answers(n: int, shared_data) -> list[str]:
    path = shared_data / "gsm8k" / "train.jsonl"
    if not path.is_file():
        pytest.skip(f"GSM8K data not found at {path}")
    with path.open() as f:
        return [json.loads(line)["answer"] for _, line in zip(range(n), f)]


def equations_hold(line: str) -> bool:
    """Whether every equation of the line (visible and annotated results alike) is arithmetically right."""
    return all(
        evaluate(line[slice(*eq.expression)]) == number_value(line[a:b])
        for eq in find_equations(line)
        for a, b in eq.results
    )


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_recorded_step_is_the_first_changed_step_on_gsm8k(name, shared_data):
    rng = random.Random(0)
    applied = 0
    for answer in gsm8k_answers(300, shared_data):
        out = PERTURBATIONS[name](answer, rng)
        if out is None:
            continue
        applied += 1
        assert first_difference(answer, out.response) == out.first_changed_step, (answer, out)
    assert applied > 250


def test_carry_keeps_gsm8k_annotations_consistent_after_the_changed_step(shared_data):
    rng = random.Random(0)
    recomputed = 0
    for answer in gsm8k_answers(300, shared_data):
        out = PERTURBATIONS["carry"](answer, rng)
        if out is None:
            continue
        before, after = TASK.split_steps(answer), TASK.split_steps(out.response)
        for old, new in zip(before[out.first_changed_step + 1 :], after[out.first_changed_step + 1 :]):
            if equations_hold(old):  # lines recomputed from the wrong value stay arithmetically right
                assert equations_hold(new), (answer, out.response)
                recomputed += old != new
    assert recomputed > 100
