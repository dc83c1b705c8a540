from itertools import islice

import pytest

from rairl.io import DataError
from rairl.tasks import TaskArgs, get_task

# Rows in the documented MedReason schema (../shared/data/medreason/README.md); the real files are not staged.
STEM = "A 60-year-old man has acute chest pain and ST elevation. Which drug restores coronary flow fastest?"
CHOICES = "Answer Choices:\nA. Aspirin\nB. Alteplase\nC. Metoprolol\nD. Atorvastatin"
REASONING = (
    "Finding reasoning paths:\n1. ST elevation -> occluded coronary artery -> reperfusion\n"
    "Reasoning Process:\nAlteplase is a thrombolytic; it dissolves the clot.\nConclusion:\nAlteplase."
)
AUTHORS_ROW = {  # the R-AIRL authors' splits: options inside the question, answer = option text
    "question": f"{STEM}\n{CHOICES}",
    "reasoning": REASONING,
    "response": "Alteplase",
    "answer": "Alteplase",
    "len_question": 30,
    "len_reasoning": 25,
    "len_response": 1,
    "sum_words": 56,
}
RAW_ROW = {  # the raw MedReason rows: options in their own field, answer with an explanation tail
    "question": STEM,
    "options": CHOICES,
    "reasoning": REASONING,
    "answer": "Alteplase. Explanation: a thrombolytic restores flow in ST-elevation infarction.",
    "dataset_name": "medqa",
}
EVAL_ROW = {"question": STEM, "options": {"A": "Aspirin", "B": "Alteplase"}, "answer": "Alteplase", "answer_idx": "B"}


def medreason(path):
    return get_task(TaskArgs(task="medreason", data=str(path)))


@pytest.mark.parametrize("cot_row", [AUTHORS_ROW, RAW_ROW])
def test_cot_rows(tmp_path, cot_row, write):
    task = medreason(write(tmp_path / "train.jsonl", [cot_row]))
    example = task.examples("train")[0]
    assert example.question == f"{STEM}\n{CHOICES}"
    assert example.meta["options"] == ["Aspirin", "Alteplase", "Metoprolol", "Atorvastatin"]
    assert example.answer == "B"
    assert example.expert == f"{REASONING}\n#### B"
    assert task.verify(example.expert, example)
    for predicted in ["B", "(B)", "alteplase", "B. Alteplase"]:
        assert task.is_correct(predicted, example)
    assert not task.is_correct("A", example)
    assert not task.is_correct("Aspirin", example)


def test_cot_answer_given_as_a_letter(tmp_path, write):
    task = medreason(write(tmp_path / "train.jsonl", [{**AUTHORS_ROW, "answer": "C."}]))
    assert task.examples("train")[0].answer == "C"


def test_options_wrapped_over_lines_are_joined(tmp_path, write):
    question = f"{STEM}\nAnswer Choices:\nA. Aspirin and\n   clopidogrel\nB. Alteplase"
    task = medreason(write(tmp_path / "train.jsonl", [{**AUTHORS_ROW, "question": question}]))
    assert task.examples("train")[0].meta["options"] == ["Aspirin and clopidogrel", "Alteplase"]


def test_evaluation_rows_have_no_expert(tmp_path, write):
    label_row = {"id": "Text-1", "question": STEM, "options": {"A": "Aspirin", "B": "Alteplase"}, "label": "B"}
    task = medreason(write(tmp_path / "medqa_test.jsonl", [EVAL_ROW, label_row]))
    for example in task.examples("medqa_test"):
        assert example.expert is None
        assert example.answer == "B"
        assert example.question == f"{STEM}\nAnswer Choices:\nA. Aspirin\nB. Alteplase"
        assert task.is_correct("Alteplase", example)


def test_skipped_letters_and_empty_options_are_relettered(tmp_path, write):
    options = {"A": "west", "B": "east", "C": "", "P": "north"}  # as in a few HLE rows
    task = medreason(write(tmp_path / "hle.jsonl", [{"question": "q", "options": options, "answer_idx": "P"}]))
    example = task.examples("hle")[0]
    assert example.meta["options"] == ["west", "east", "north"]
    assert example.answer == "C"
    assert task.is_correct("north", example)


@pytest.mark.parametrize(
    "split, lines, first_answer",
    [("medqa_test", 1273, "C"), ("medbullets_op4", 308, "C"), ("MedXpertQA_test", 1449, "B"), ("HLE_biomed", 103, "C")],
)
def test_real_evaluation_sets(tmp_path, split, lines, first_answer, shared_data, write):
    source = shared_data / "medreason_eval" / f"{split}.jsonl"
    if not source.is_file():
        pytest.skip(f"staged data not found at {source}")
    with source.open(encoding="utf-8") as f:
        path = write(tmp_path / f"{split}.jsonl", [line.rstrip("\n") for line in islice(f, 3)])
    task = medreason(path)
    examples = task.examples(split)
    assert examples[0].answer == first_answer
    assert all(ex.expert is None for ex in examples)
    assert all("\nAnswer Choices:\nA. " in ex.question for ex in examples)
    assert all(task.is_correct(ex.answer, ex) for ex in examples)
    assert len(medreason(source).examples(split)) == lines


@pytest.mark.parametrize(
    "bad, field, problem",
    [
        ({**AUTHORS_ROW, "question": ""}, "question", "empty"),
        ({**AUTHORS_ROW, "question": STEM}, "question", "no options found"),
        ({**RAW_ROW, "options": "none"}, "options", "no options found"),
        ({**RAW_ROW, "options": ["Aspirin"]}, "options", "expected an object or a string"),
        ({**AUTHORS_ROW, "answer": "Heparin"}, "answer", "names none of the options"),
        ({**AUTHORS_ROW, "answer": ""}, "answer", "empty"),
        ({k: v for k, v in AUTHORS_ROW.items() if k != "answer"}, "answer", "missing"),
        ({**AUTHORS_ROW, "reasoning": " "}, "reasoning", "empty"),
        ({**EVAL_ROW, "answer_idx": "E"}, "answer_idx", "not one of the option letters"),
        ({**EVAL_ROW, "answer_idx": ""}, "answer_idx", "expected an answer letter"),
        ({**EVAL_ROW, "options": {"A": "x", "bb": "y"}}, "options", "single-letter keys"),
        ({**EVAL_ROW, "options": {"A": "x", "B": 2}}, "options", "must be a string"),
        ({**EVAL_ROW, "options": {"A": " "}}, "options", "every option is empty"),
        ({**EVAL_ROW, "options": {}}, "options", "single-letter keys"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, bad, field, problem, write):
    path = write(tmp_path / "train.jsonl", [AUTHORS_ROW, bad])
    with pytest.raises(DataError, match=problem) as err:
        medreason(path).examples("train")
    assert f"train.jsonl, line 2, field '{field}'" in str(err.value)


def test_bad_json_line(tmp_path, write):
    path = write(tmp_path / "train.jsonl", ['{"question": "q"'])
    with pytest.raises(DataError, match=r"train.jsonl, line 1: not valid JSON"):
        medreason(path).examples("train")
