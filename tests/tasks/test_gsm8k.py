import pytest

from rairl.io import DataError
from rairl.tasks import TaskArgs, get_task
from rairl.tasks.gsm8k import strip_annotations


def gsm8k(path):
    return get_task(TaskArgs(task="gsm8k", data=str(path)))


def test_strip_annotations():
    assert strip_annotations("48/2 = <<48/2=24>>24 and $<<12/60=0.2>>0.2") == "48/2 = 24 and $0.2"


def test_real_train_lines(tmp_path, real_lines):
    task = gsm8k(real_lines("gsm8k/train.jsonl", 3))
    first = task.examples("train")[0]
    assert first.question.startswith("Natalia sold clips to 48 of her friends")
    assert first.answer == "72"
    assert first.expert == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n#### 72"
    )
    assert task.prompt(first) == f"Question: {first.question}\nAnswer:\n"
    for example in task.examples("train"):
        assert "<<" not in example.expert and ">>" not in example.expert
        assert task.verify(example.expert, example)
        assert task.extract_answer(example.expert) == example.answer
    assert task.first_error(first.expert, first) is None  # GSM8K steps are not machine-checked


def test_real_socratic_split(tmp_path, real_lines):
    task = gsm8k(real_lines("gsm8k/test_socratic.jsonl", 2))
    example = task.examples("test_socratic")[0]
    assert example.answer == "18"
    assert " ** " in example.expert and example.expert.endswith("\n#### 18")


def test_full_real_splits_load(shared_data):
    if not (shared_data / "gsm8k").is_dir():
        pytest.skip(f"staged data not found at {shared_data / 'gsm8k'}")
    task = gsm8k(shared_data / "gsm8k")
    assert set(task.splits) == {"train", "test", "test_socratic"}
    assert len(task.examples("test")) == 1319
    assert all(task.verify(ex.expert, ex) for ex in task.examples("test"))


def test_commas_in_the_gold_answer_are_removed(tmp_path, write):
    solution = "500 + 500 = <<500+500=1000>>1000\n#### 1,000"
    path = write(tmp_path / "train.jsonl", [{"question": "q", "answer": solution}])
    example = gsm8k(path).examples("train")[0]
    assert example.answer == "1000"
    assert example.expert == "500 + 500 = 1000\n#### 1000"
    task = gsm8k(path)
    for predicted in ["1000", "1,000", "1000.0", "$1,000"]:
        assert task.is_correct(predicted, example)
    assert not task.is_correct("100", example)
    assert not task.is_correct(None, example)


@pytest.mark.parametrize(
    "row, line, field, problem",
    [
        ({"answer": "#### 3"}, 2, "question", "missing"),
        ({"question": "q"}, 2, "answer", "missing"),
        ({"question": "q", "answer": "  "}, 2, "answer", "empty"),
        ({"question": "q", "answer": 3}, 2, "answer", "expected str"),
        ({"question": "q", "answer": "2 + 1 = 3"}, 2, "answer", "no final answer"),
        ({"question": "q", "answer": "so\n####  "}, 2, "answer", "is not a number"),
        ({"question": "q", "answer": "so\n#### three"}, 2, "answer", "is not a number"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, row, line, field, problem, write):
    path = write(tmp_path / "train.jsonl", [{"question": "ok", "answer": "#### 1"}, row])
    with pytest.raises(DataError, match=problem) as err:
        gsm8k(path).examples("train")
    assert f"train.jsonl, line {line}, field '{field}'" in str(err.value)


def test_bad_json_line(tmp_path, write):
    path = write(tmp_path / "test.jsonl", ['{"question": "q", "answer": "#### 1"}', "not json"])
    with pytest.raises(DataError, match=r"test.jsonl, line 2: not valid JSON"):
        gsm8k(path).examples("test")


def test_a_response_without_an_answer_line_is_read_by_its_last_number(tmp_path, write):
    task = gsm8k(write(tmp_path / "test.jsonl", [{"question": "q", "answer": "x\n#### 1,250"}]))
    [ex] = task.examples("test")
    assert task.extract_answer("She pays 2 * $625 = $1,250.") == "1250" and task.verify("... = $1,250.", ex)
    assert task.extract_answer("so 3.5 then -2") == "-2"
    assert task.extract_answer("a\n#### 72") == "72"
    assert task.extract_answer("a\n####") is None  # an empty answer line is no answer, not the last number
    assert task.extract_answer("no numbers here") is None
