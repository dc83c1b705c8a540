"""Step-labelled data of `rairl prm` (rairl.trainers.prm_data): the three formats, the token positions a label sits
at, ignored steps that stay ignored, one line per bad row, and evaluation-only data refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rairl.models import build_char_tokenizer
from rairl.tasks import Example, TaskArgs, get_task
from rairl.trainers.prm import StepLabelCollator
from rairl.trainers.prm_data import (
    detect_format,
    encode_step_examples,
    read_step_examples,
    shuffle_labels,
)

TASK = get_task(TaskArgs(n_train=8, n_eval=8))
PROMPT = "Question: Ann has 2 apples, gets 3 more. How many?\nAnswer:\n"


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_stepwise_rows_take_bools_and_soft_labels(tmp_path):
    f = write(tmp_path / "s.jsonl", [{"prompt": PROMPT, "completions": ["2+3=5", "#### 5"], "labels": [True, 0.25]}])
    (ex,) = read_step_examples([f], TASK)
    assert ex.response == "2+3=5\n#### 5" and ex.spans == ((0, 5), (6, 12))
    assert ex.labels == (1.0, 0.25) and ex.outcome == 0.25  # the trace: its worst step


def test_processbench_rows_label_the_steps_up_to_the_first_error_only(tmp_path):
    f = write(tmp_path / "pb.jsonl", [{"problem": "Ann has 2 apples, gets 3 more.", "steps": ["a", "b", "c", "d"],
                                       "label": 1}, {"problem": "q", "steps": ["a", "b"], "label": -1}])  # fmt: skip
    wrong, right = read_step_examples([f], TASK)
    assert wrong.labels == (1.0, 0.0, None, None) and wrong.outcome == 0.0
    assert right.labels == (1.0, 1.0) and right.outcome == 1.0
    assert wrong.prompt == TASK.prompt(Example("x", "Ann has 2 apples, gets 3 more.", ""))


def test_sample_rows_are_labelled_by_first_error_and_a_missing_step_fails_the_trace(tmp_path):
    rows = [
        {"id": "a", "prompt": PROMPT, "response": "2+3=6\n6+1=7\n#### 7", "first_error": 0, "correct": False},
        {"id": "b", "prompt": PROMPT, "response": "2+3=5\n#### 5", "first_error": -1, "correct": True},
        {"id": "c", "prompt": PROMPT, "response": "2+3=5\n#### 5", "first_error": 2, "correct": False},
    ]
    a, b, c = read_step_examples([write(tmp_path / "samples.jsonl", rows)], TASK)
    assert a.labels == (0.0, None, None) and a.outcome == 0.0
    assert b.labels == (1.0, 1.0) and b.outcome == 1.0
    assert c.labels == (1.0, 1.0) and c.outcome == 0.0  # every step right, one missing: the trace is wrong


def test_formats_are_detected_from_the_first_row(tmp_path):
    stepwise = write(tmp_path / "a.jsonl", [{"prompt": "p", "completions": ["x"], "labels": [1]}])
    samples = write(tmp_path / "c.jsonl", [{"prompt": "p", "response": "x", "first_error": -1}])
    assert detect_format(Path(stepwise)) == "stepwise" and detect_format(Path(samples)) == "samples"
    bad = write(tmp_path / "b.jsonl", [{"question": "q"}])
    with pytest.raises(ValueError, match=r"b.jsonl, line 1: no format fits the fields \['question'\]"):
        read_step_examples([bad], TASK)


def test_a_label_sits_at_its_steps_last_token_and_ignored_steps_stay_ignored(tmp_path):
    """trl #2110: a label column cast to bool turned the ignore value -100 into True. Here labels are float32 and an
    ignored step has no position at all, so hard (bool) labels and an unlabelled step cannot meet a sentinel."""
    tokenizer = build_char_tokenizer(model_max_length=256)
    pb = write(tmp_path / "pb.jsonl", [{"problem": "q", "steps": ["1+1=2", "2+2=5", "5+1=6"], "label": 1}])
    sw = write(tmp_path / "sw.jsonl", [{"prompt": PROMPT, "completions": ["1+1=2", "#### 2"], "labels": [True, True]}])
    examples = read_step_examples([pb, sw], TASK)
    data = encode_step_examples(tokenizer, examples)
    assert data.features["labels"].feature.dtype == "float32"
    row = data[0]
    ids, positions = row["input_ids"], row["label_positions"]
    assert row["labels"] == [1.0, 0.0, 0.0]  # step 0 right, step 1 wrong, the trace wrong; step 2 absent
    assert [tokenizer.decode([ids[p]]) for p in positions[:2]] == ["2", "5"]  # the last character of steps 0 and 1
    assert positions[2] == len(ids) - 1 and ids[-1] == tokenizer.eos_token_id
    step2_end = len(ids) - 2  # "6", the last token before EOS
    batch = StepLabelCollator(tokenizer.pad_token_id)([data[0], data[1]])
    assert batch["step_labels"].dtype.is_floating_point and batch["step_mask"].dtype == batch["step_mask"].bool().dtype
    assert not batch["step_mask"][0, step2_end] and int(batch["step_mask"][0].sum()) == 3
    mask1 = batch["step_mask"][1]
    assert int(mask1.sum()) == 3 and batch["step_labels"][1][mask1].tolist() == [1.0] * 3
    assert not batch["step_mask"][1, len(data[1]["input_ids"]) :].any()  # padding never labelled


@pytest.mark.parametrize(
    "row, field, says",
    [
        ({"prompt": "p", "completions": ["a", "b"], "labels": [1]}, "labels", "1 labels for 2 steps; lengths differ"),
        ({"prompt": "p", "completions": ["a"], "labels": [-100]}, "labels", "label 0 is -100; expected a bool or"),
        ({"prompt": "p", "completions": ["a"], "labels": [1.5]}, "labels", "label 0 is 1.5"),
        ({"prompt": "p", "completions": ["a"], "labels": ["yes"]}, "labels", "label 0 is 'yes'"),
        ({"prompt": "p", "completions": [], "labels": []}, "completions", "empty list of steps"),
        ({"prompt": "p", "completions": ["a", " "], "labels": [1, 1]}, "completions", "step 1 is blank"),
        ({"problem": "q", "steps": [], "label": -1}, "steps", "empty list"),
        ({"problem": "q", "steps": ["a"], "label": 3}, "label", "must be -1 (no error) or a step index"),
        ({"prompt": PROMPT, "response": "", "first_error": -1}, "response", "no steps (empty response)"),
        ({"prompt": PROMPT, "response": "1+1=2", "first_error": None}, "first_error", "cannot check steps"),
        ({"prompt": PROMPT, "response": "1+1=2", "first_error": 5}, "first_error", "past the trace's 1 steps"),
    ],
)
def test_each_bad_row_gives_one_line_naming_file_line_and_field(tmp_path, row, field, says):
    good = {"prompt": "p", "completions": ["a"], "labels": [1]} if "completions" in row else None
    good = good or ({"problem": "q", "steps": ["a"], "label": -1} if "steps" in row else
                    {"prompt": PROMPT, "response": "1+1=2", "first_error": -1})  # fmt: skip
    f = write(tmp_path / "data.jsonl", [good, row])
    with pytest.raises(ValueError) as err:
        read_step_examples([f], TASK)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{f}, line 2, field '{field}': ") and says in message


@pytest.mark.parametrize("folder", ["processbench", "mr_gsm8k"])
def test_evaluation_only_data_is_refused(tmp_path, folder):
    (tmp_path / folder).mkdir()
    f = write(tmp_path / folder / "gsm8k.jsonl", [{"problem": "q", "steps": ["a"], "label": -1}])
    with pytest.raises(ValueError, match=f"{folder}/ is evaluation-only data"):
        read_step_examples([f], TASK)


def test_shuffled_labels_keep_the_traces_and_permute_labels_within_a_step_count(tmp_path):
    rows = [{"prompt": "p", "completions": ["a", "b"], "labels": [1, k % 2]} for k in range(20)]
    rows.append({"prompt": "p", "completions": ["a"], "labels": [0.5]})
    examples = read_step_examples([write(tmp_path / "s.jsonl", rows)], TASK)
    shuffled = shuffle_labels(examples, seed=0)
    assert [e.response for e in shuffled] == [e.response for e in examples]
    assert sorted(e.labels for e in shuffled) == sorted(e.labels for e in examples)
    assert [e.labels for e in shuffled] != [e.labels for e in examples]
    assert shuffled[-1].labels == (0.5,)
