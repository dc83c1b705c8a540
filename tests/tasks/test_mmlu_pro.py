import pytest

from rairl.io import DataError
from rairl.tasks import TaskArgs, get_task


def mmlu_pro(path):
    return get_task(TaskArgs(task="mmlu_pro", data=str(path)))


def row(**changes):
    base = {
        "question_id": 7,
        "question": "What is 2 + 2?",
        "options": ["3", "4", "5"],
        "answer": "B",
        "answer_index": 1,
        "cot_content": "A: Let's think step by step. 2 + 2 = 4.\nThat is option B. The answer is (B).",
        "category": "math",
    }
    return {**base, **changes}


def test_real_validation_lines_have_cot_experts(tmp_path, real_lines):
    task = mmlu_pro(real_lines("mmlu_pro/validation.jsonl", 5))
    examples = task.examples("validation")
    first = examples[0]
    assert first.answer == "A"
    assert first.meta["question_id"] == 0 and first.meta["category"] == "math"
    assert first.question.endswith("Answer Choices:\nA. 0\nB. 30\nC. 3\nD. 10\nE. 12\nF. 50\nG. 2\nH. 100\nI. 20\nJ. 5")
    assert first.expert.startswith("Let's think step by step. A characteristic of a ring")
    assert first.expert.endswith("Hence $k=0$ and $n=0$.\n#### A")
    assert len(examples[4].meta["options"]) == 6  # four "N/A" paddings dropped
    for example in examples:
        assert task.verify(example.expert, example)
        assert "The answer is" not in example.expert


def test_real_test_lines_have_no_expert(tmp_path, real_lines):
    task = mmlu_pro(real_lines("mmlu_pro/test.jsonl", 3))
    first = task.examples("test")[0]
    assert first.expert is None
    assert first.answer == "I"
    assert task.is_correct("I", first)
    assert task.is_correct("Unsafe practices, Distress, Fear, Serious", first)
    assert not task.is_correct("H", first)


def test_test_is_the_evaluation_split(tmp_path, write):
    write(tmp_path / "validation.jsonl", [row()])
    write(tmp_path / "test.jsonl", [row(cot_content="")])
    assert mmlu_pro(tmp_path).eval_splits == ("test",)


def test_prompt_and_verification(tmp_path, write):
    task = mmlu_pro(write(tmp_path / "validation.jsonl", [row()]))
    example = task.examples("validation")[0]
    assert task.prompt(example) == "Question: What is 2 + 2?\nAnswer Choices:\nA. 3\nB. 4\nC. 5\nAnswer:\n"
    assert example.expert == "Let's think step by step. 2 + 2 = 4.\nThat is option B.\n#### B"
    for predicted in ["B", "(B)", "b", "4", "B. 4"]:
        assert task.is_correct(predicted, example)
    for predicted in ["A", "5", "", None]:
        assert not task.is_correct(predicted, example)


def test_cot_without_the_closing_sentence_still_gets_an_answer_line(tmp_path, write):
    task = mmlu_pro(write(tmp_path / "validation.jsonl", [row(cot_content="A: 2 + 2 = 4.")]))
    assert task.examples("validation")[0].expert == "2 + 2 = 4.\n#### B"


def test_the_letter_wins_over_a_conflicting_answer_index(tmp_path, caplog, write):
    # Upstream question 3983 has answer "C" and answer_index 1.
    task = mmlu_pro(write(tmp_path / "test.jsonl", [row(answer="C", answer_index=1, cot_content="")]))
    assert task.examples("test")[0].answer == "C"
    assert "test.jsonl, line 1: answer C disagrees with answer_index 1" in caplog.text


def test_padding_is_kept_up_to_the_gold_option(tmp_path, write):
    options = ["x", "N/A", "y", "N/A", "N/A"]
    task = mmlu_pro(write(tmp_path / "test.jsonl", [row(options=options, answer="C", answer_index=2, cot_content="")]))
    assert task.examples("test")[0].meta["options"] == ["x", "N/A", "y"]


@pytest.mark.parametrize(
    "bad, field, problem",
    [
        (row(question=""), "question", "empty"),
        ({k: v for k, v in row().items() if k != "options"}, "options", "missing"),
        (row(options="A. 3"), "options", "expected list"),
        (row(options=[]), "options", "expected 1 to 26 strings"),
        (row(options=["3", 4]), "options", "expected 1 to 26 strings"),
        (row(answer=""), "answer", "empty"),
        (row(answer="D"), "answer", "not one of the option letters"),
        (row(cot_content=5), "cot_content", "expected str"),
        (row(cot_content="A: so. The answer is (C)."), "cot_content", r"concludes \(C\) but the gold answer is B"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, bad, field, problem, write):
    path = write(tmp_path / "validation.jsonl", [row(), bad])
    with pytest.raises(DataError, match=problem) as err:
        mmlu_pro(path).examples("validation")
    assert f"validation.jsonl, line 2, field '{field}'" in str(err.value)


def test_bad_json_line(tmp_path, write):
    path = write(tmp_path / "test.jsonl", [row(), row(), '{"question": }'])
    with pytest.raises(DataError, match=r"test.jsonl, line 3: not valid JSON"):
        mmlu_pro(path).examples("test")
