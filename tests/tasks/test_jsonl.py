import pytest

from rairl.io import DataError
from rairl.tasks import TaskArgs, get_task


def jsonl(path, **fields):
    return get_task(TaskArgs(task="jsonl", data=str(path), **fields))


def test_custom_field_names_and_answer_line(tmp_path, write):
    rows = [
        {"problem": " Half of 1? ", "solution": "1/2 = 0.5", "final": r"\frac{1}{2}"},
        {"problem": "2*3?", "solution": "2*3=6\n#### 6", "final": 6},
        {"problem": "7-7?", "final": 0},
        {"problem": "1+1?", "solution": None, "final": "2"},
    ]
    path = write(tmp_path / "train.jsonl", rows)
    task = jsonl(path, question_field="problem", trace_field="solution", answer_field="final")
    half, six, zero, two = task.examples("train")
    assert half.question == "Half of 1?"
    assert half.expert == "1/2 = 0.5\n#### \\frac{1}{2}"  # an answer line is appended
    assert six.expert == "2*3=6\n#### 6"  # an existing answer line is kept
    assert six.answer == "6" and zero.answer == "0"
    assert zero.expert is None and two.expert is None  # no trace: evaluation-only rows
    assert all(task.verify(ex.expert, ex) for ex in (half, six))
    assert task.is_correct("0.5", half) and task.is_correct("1/2", half)
    assert task.is_correct("6.0", six) and not task.is_correct("7", six)
    assert not task.is_correct(None, zero)


def test_default_field_names(tmp_path, write):
    task = jsonl(write(tmp_path / "test.jsonl", [{"question": "q", "trace": "t", "answer": "1,000"}]))
    example = task.examples("test")[0]
    assert (example.answer, example.expert) == ("1,000", "t\n#### 1,000")
    assert task.is_correct("1000", example)


@pytest.mark.parametrize(
    "bad, field, problem",
    [
        ({"answer": "1"}, "question", "missing"),
        ({"question": "q"}, "answer", "missing"),
        ({"question": "q", "answer": " "}, "answer", "empty"),
        ({"question": "q", "answer": True}, "answer", "got bool"),
        ({"question": "q", "answer": [1]}, "answer", "expected str or int or float"),
        ({"question": "q", "answer": "1", "trace": ""}, "trace", "empty"),
        ({"question": "q", "answer": "1", "trace": 3}, "trace", "expected str"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, bad, field, problem, write):
    path = write(tmp_path / "data.jsonl", [{"question": "ok", "answer": "1"}, bad])
    with pytest.raises(DataError, match=problem) as err:
        jsonl(path).examples("data")
    assert f"data.jsonl, line 2, field '{field}'" in str(err.value)


def test_bad_json_line(tmp_path, write):
    path = write(tmp_path / "data.jsonl", ['{"question": "ok", "answer": "1"}', "", "{'single': 'quotes'}"])
    with pytest.raises(DataError, match=r"data.jsonl, line 3: not valid JSON"):
        jsonl(path).examples("data")
