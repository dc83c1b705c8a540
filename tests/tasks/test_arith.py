import pytest

from rairl.tasks import TaskArgs, get_task
from rairl.tasks.arith import _PHRASES, SHIFT_PHRASES, ArithProblem, ArithTask, check_steps

# 3 + 4 = 7, then 7 * 2 = 14.
PROBLEM = ArithProblem(3, (("+", 4), ("*", 2)))
EXPERT = "3+4=7\n7*2=14\n#### 14"


def test_expert_trace_and_values(steps):
    assert PROBLEM.values() == [3, 7, 14]
    assert PROBLEM.expert() == EXPERT
    assert check_steps(steps(EXPERT), PROBLEM) == -1
    assert check_steps(steps("3 + 4 = 7\n7 * 2 = 14\n####  14.0"), PROBLEM) == -1  # spacing and number format


@pytest.mark.parametrize(
    "response, first_wrong",
    [
        ("3+4=8\n8*2=16\n#### 16", 0),  # wrong result in step 0 (then carried on consistently)
        ("3+4=7\n7*2=15\n#### 15", 1),  # wrong result in step 1
        ("3+4=7\n8*2=16\n#### 16", 1),  # wrong carried value: step 1 starts from 8, not 7
        ("3+4=7\n7+2=9\n#### 9", 1),  # wrong operation
        ("3+4=7\n#### 14", 1),  # missing step: the answer line stands where step 1 should
        ("3+4=7", 1),  # truncated
        ("3+4=7\n7*2=14\n#### 15", 2),  # wrong final answer
        ("3+4=7\n7*2=14", 2),  # no answer line
        ("3+4=7\n7*2=14\n14+0=14\n#### 14", 2),  # extra step before the answer
        ("3+4=7\n7*2=14\n#### 14\nthanks", 2),  # extra line after the answer
        ("", 0),
    ],
)
def test_check_steps_finds_the_first_wrong_step(response, first_wrong, steps):
    assert check_steps(steps(response), PROBLEM) == first_wrong


def test_task_first_error_ignores_blank_lines():
    task = ArithTask(n_train=20, n_eval=5)
    example = task.examples("test")[0]
    spaced = example.expert.replace("\n", "\n\n")
    assert task.first_error(spaced, example) == -1
    assert task.verify(spaced, example)


def test_every_expert_trace_checks_out():
    task = ArithTask(n_train=300, n_eval=50)
    for split in task.splits:
        for example in task.examples(split):
            assert task.first_error(example.expert, example) == -1
            assert task.verify(example.expert, example)


def test_generation_is_deterministic_and_seeded():
    def dump(task):
        return [(ex.id, ex.question, ex.expert) for split in task.splits for ex in task.examples(split)]

    assert dump(ArithTask(n_train=200, n_eval=50, seed=0)) == dump(ArithTask(n_train=200, n_eval=50, seed=0))
    assert dump(ArithTask(n_train=200, n_eval=50, seed=0)) != dump(ArithTask(n_train=200, n_eval=50, seed=1))


def test_no_overlap_between_splits_and_ood_is_longer():
    task = get_task(TaskArgs())  # the defaults: 5000 train problems, 300 per evaluation split
    problems = {split: [ex.meta["problem"] for ex in task.examples(split)] for split in task.splits}
    for split, items in problems.items():
        assert len(set(items)) == len(items), f"duplicate problems in {split}"
    train, validation = set(problems["train"]), set(problems["validation"])
    assert not train & set(problems["validation"])
    assert not (train | validation) & set(problems["test"])
    assert not train & set(problems["ood"])
    assert all(2 <= len(p.ops) <= 4 for p in problems["test"])
    assert all(5 <= len(p.ops) <= 6 for p in problems["ood"])
    # shift: problems like training's, one operation asked with a verb no training question uses
    assert not train & set(problems["shift"])
    assert all(2 <= len(p.ops) <= 4 for p in problems["shift"])
    verbs = lambda table: {phrase.split()[0] for phrases in table.values() for phrase in phrases}  # noqa: E731
    assert not verbs(SHIFT_PHRASES) & verbs(_PHRASES)
    for ex in task.examples("shift"):
        assert sum(ex.question.count(f" {v} ") for v in verbs(SHIFT_PHRASES)) == 1, ex.question


def test_too_small_problem_space_is_an_error():
    with pytest.raises(ValueError, match="distinct train problems"):
        ArithTask(min_ops=1, max_ops=1, max_operand=2, n_train=100).examples("train")


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="OOD split"):
        ArithTask(max_ops=4, ood_min_ops=4)
    with pytest.raises(ValueError, match="unknown operation"):
        ArithTask(ops="+^")
    with pytest.raises(ValueError, match="unknown split"):
        ArithTask().examples("dev")
