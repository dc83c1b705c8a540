import random

import pytest

from rairl.inference.labelled import SourceSpec, injected
from rairl.rewards.perturb import perturb
from rairl.tasks import TaskArgs, get_task
from rairl.tasks.arith import ArithProblem
from rairl.tasks.countdown_gen import CountdownGenTask, check_steps, equation

NUMBERS, TARGET = [2, 3, 4], 14  # (3+4)*2


@pytest.fixture(scope="module")
def task() -> CountdownGenTask:
    task = get_task(TaskArgs(task="countdown_gen", n_train=300, n_eval=60))
    assert isinstance(task, CountdownGenTask)
    return task


@pytest.mark.parametrize(
    "problem, text",
    [
        (ArithProblem(3, (("+", 4), ("*", 2))), "(3+4)*2"),
        (ArithProblem(3, (("*", 4), ("+", 2))), "3*4+2"),
        (ArithProblem(9, (("-", 4), ("-", 2), ("*", 3), ("/", 9))), "(9-4-2)*3/9"),
    ],
)
def test_equation_keeps_the_chain_value(problem, text):
    assert equation(problem) == text
    assert eval(text) == problem.values()[-1]  # plain integers and + - * / ( ) only


@pytest.mark.parametrize(
    "response, first_wrong",
    [
        ("3+4=7\n7*2=14\n#### (3+4)*2", -1),
        ("4*2=8\n8+3=11\n#### 4*2+3", 2),  # valid steps, but 11 is not the target
        ("2*4=8\n3+8=11\n11+3=14\n#### 2*4+3+3", 2),  # 3 used twice
        ("3+4=8\n8*2=16\n#### (3+4)*2", 0),  # wrong result
        ("3+5=8\n#### (3+4)*2", 0),  # 5 is not a puzzle number
        ("3+4=7\n7*2=14", 2),  # no answer line
        ("3+4=7\n7*2=14\n#### (3+4)*2\nthanks", 2),  # a line after the answer
        ("3*2=6\n4+6=10\n#### 14", 2),  # the answer must be an equation of the numbers
        ("3+4=7\n7/0=0\n#### 7", 1),  # division by zero
        ("", 0),
    ],
)
def test_check_steps_finds_the_first_wrong_step(response, first_wrong, steps):
    assert check_steps(steps(response), NUMBERS, TARGET) == first_wrong


def test_expert_traces_are_correct_and_splits_disjoint(task):
    puzzles = {}
    for split in task.splits:
        examples = task.examples(split)
        for ex in examples:
            assert task.verify(ex.expert, ex) and task.first_error(ex.expert, ex) == -1
            assert str(ex.meta["target"]) in ex.question and ex.answer in ex.expert
        puzzles[split] = {(tuple(sorted(ex.meta["numbers"])), ex.meta["target"]) for ex in examples}
        assert len(puzzles[split]) == len(examples)
    assert not puzzles["test"] & (puzzles["train"] | puzzles["validation"])
    assert not puzzles["ood"] & puzzles["train"]
    assert not puzzles["shift"] & puzzles["train"]  # the shift split: training's kind of puzzle in a new sentence
    assert all(ex.question.startswith("Reach ") for ex in task.examples("shift"))
    assert not any(ex.question.startswith("Reach ") for ex in task.examples("train"))
    assert min(len(ex.meta["numbers"]) for ex in task.examples("ood")) > max(
        len(ex.meta["numbers"]) for ex in task.examples("train")
    )


def test_any_equation_of_the_numbers_is_correct(task):
    ex = next(ex for ex in task.examples("validation") if ex.meta["n_steps"] == 2)
    a, b, c = ex.meta["numbers"]
    target = ex.meta["target"]
    others = [f"{x}{op}{y}{op2}{z}" for x, y, z in [(a, b, c), (c, a, b)] for op in "+-*" for op2 in "+-*"]
    for candidate in others:
        assert task.is_correct(candidate, ex) == (eval(candidate) == target)
    assert not task.is_correct(f"{target}", ex) or target in ex.meta["numbers"]


def test_injected_errors_are_found_where_they_were_made(task):
    rng = random.Random(0)
    found = []
    for ex in task.examples("validation"):
        bad = perturb(ex.expert, rng)
        first = task.first_error(bad.response, ex)
        if first == -1:  # a dropped step the answer did not need: the injected source skips these
            assert bad.name == "drop"
            continue
        assert first >= bad.first_changed_step  # the expert's steps before it stay right
        found.append(first == bad.first_changed_step)
    assert len(found) >= 0.8 * len(task.examples("validation"))
    assert sum(found) >= 0.9 * len(found)


def test_the_injected_benchmark_skips_changes_that_leave_a_correct_trace(task):
    bench = injected(task, SourceSpec(split="validation", seed=0))
    for trace in bench.traces:
        ex = next(ex for ex in task.examples("validation") if trace.meta["example_id"] == ex.id)
        first = task.first_error("\n".join(trace.steps), ex)
        assert (first == -1) == (trace.label == -1)
    assert bench.dropped > 0
