from fractions import Fraction
from itertools import islice

import pytest

from rairl.io import DataError
from rairl.tasks import TaskArgs, get_task
from rairl.tasks.countdown import check_equation, evaluate


def countdown(path):
    return get_task(TaskArgs(task="countdown", data=str(path)))


def row(nums, target, equation="", trace="I try things."):
    return {"question": "...", "target": trace, "answer": equation, "reward_model": {"nums": nums, "target": target}}


def test_evaluate_is_exact_and_lists_the_numbers():
    assert evaluate("(74 - 33) + (18 / 18)") == (Fraction(42), [74, 33, 18, 18])
    assert evaluate("7 / 2") == (Fraction(7, 2), [7, 2])
    assert evaluate("6 × 7 ÷ 3") == (Fraction(14), [6, 7, 3])


@pytest.mark.parametrize(
    "equation, nums, target",
    [
        ("(74 - 33) + (18 / 18)", [18, 18, 74, 33], 42),
        ("50 - 8", [50, 8, 3], 42),  # each number at most once: 3 may go unused
        ("(6 / 4) * 4", [6, 4, 4], 6),  # exact rationals along the way
        ("(68 - 56) + 72 = 84", [68, 56, 72], 84),  # the equation written with its result
        ("(97 - 73) + (8 - 5) = 24 + 3 = 27", [97, 5, 73, 8], 27),  # a chain: every part equals the target
        ("(59 - 53) × 4", [53, 59, 4], 24),
    ],
)
def test_check_equation_accepts(equation, nums, target):
    assert check_equation(equation, nums, target)


@pytest.mark.parametrize(
    "equation, nums, target",
    [
        ("18 + 18 + 6", [18, 6, 5], 42),  # 18 used twice but given once
        ("40 + 2", [40, 3], 42),  # 2 is not a given number
        ("50 - 3", [50, 8, 3], 42),  # wrong value
        ("(78 - 50) - 41", [41, 50, 78], 69),
        ("91 - (92 - 87) = 88", [87, 91, 92], 88),  # the left side is 86
        ("42 = 41", [42], 42),  # a later part of the chain misses the target
        ("5 / (3 - 3) + 42", [5, 3, 3, 42], 42),  # division by zero
        ("-8 + 50", [50, 8], 42),  # unary minus is not one of the operations
        ("2 ** 5 + 10", [2, 5, 10], 42),
        ("__import__('os').getcwd()", [1], 42),
        ("0x2A", [42], 42),
        ("42.0", [42], 42),
        ("(40 + 2", [40, 2], 42),
        ("(" * 300 + "42" + ")" * 300, [42], 42),  # too long to be an answer
        ("", [42], 42),
        (None, [42], 42),
    ],
)
def test_check_equation_rejects(equation, nums, target):
    assert not check_equation(equation, nums, target)


def test_real_lines(tmp_path, shared_data, write):
    source = shared_data / "countdown" / "train.jsonl"
    if not source.is_file():
        pytest.skip(f"staged data not found at {source}")
    with source.open(encoding="utf-8") as f:
        path = write(tmp_path / "train.jsonl", [line.rstrip("\n") for line in islice(f, 3)])
    task = countdown(path)
    first = task.examples("train")[0]
    assert first.meta == {"numbers": [18, 18, 74, 33], "target": 42}
    assert "[18, 18, 74, 33]" in first.question and "equals 42" in first.question
    assert "<think>" not in task.prompt(first)
    assert first.answer == "(74 - 33) + (18 / 18)"
    assert first.expert.startswith("Okay, let's try to figure out how to make 42")
    assert first.expert.endswith("Perfect, I think that works.\n#### (74 - 33) + (18 / 18)")
    for example in task.examples("train"):
        assert task.verify(example.expert, example)
        assert task.is_correct(example.answer, example)
    assert task.is_correct("(18 / 18) + 74 - 33", first)
    assert not task.is_correct("74 - 33", first)


def test_a_row_with_a_wrong_reference_equation_has_no_expert(tmp_path, caplog, write):
    path = write(tmp_path / "train.jsonl", [row([97, 1, 79], 17, ""), row([41, 50, 78], 69, "(78 - 50) - 41")])
    examples = countdown(path).examples("train")
    assert [ex.expert for ex in examples] == [None, None]
    assert [ex.answer for ex in examples] == ["17", "69"]
    assert "line 2: reference equation '(78 - 50) - 41' does not reach 69" in caplog.text


def test_empty_reasoning_keeps_the_equation(tmp_path, write):
    path = write(tmp_path / "train.jsonl", [row([40, 2], 42, "40 + 2", trace="")])
    assert countdown(path).examples("train")[0].expert == "#### 40 + 2"


@pytest.mark.parametrize(
    "bad, field, problem",
    [
        ({"answer": "1"}, "reward_model", "missing"),
        ({"reward_model": [1, 2]}, "reward_model", "expected dict"),
        ({"reward_model": {"target": 3}}, "reward_model.nums", "non-empty list of integers"),
        ({"reward_model": {"nums": [1, "2"], "target": 3}}, "reward_model.nums", "non-empty list of integers"),
        ({"reward_model": {"nums": [1, 2], "target": "3"}}, "reward_model.target", "expected an integer"),
        ({"reward_model": {"nums": [1, 2], "target": 3}, "target": 5}, "target", "expected str"),
        ({"reward_model": {"nums": [1, 2], "target": 3}, "answer": ["1 + 2"]}, "answer", "expected str"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, bad, field, problem, write):
    path = write(tmp_path / "eval.jsonl", [row([1, 2], 3, "1 + 2"), bad])
    with pytest.raises(DataError, match=problem) as err:
        countdown(path).examples("eval")
    assert f"eval.jsonl, line 2, field '{field}'" in str(err.value)


def test_bad_json_line(tmp_path, write):
    path = write(tmp_path / "eval.jsonl", ["[1, 2]"])
    with pytest.raises(DataError, match=r"eval.jsonl, line 1: expected a JSON object"):
        countdown(path).examples("eval")
