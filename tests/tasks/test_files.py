import pytest

from rairl.io import DataError
from rairl.tasks import TaskArgs, get_task
from rairl.tasks.files import split_files, with_answer_line

ROW = {"question": "1+1?", "answer": "2"}


def jsonl_task(data):
    return get_task(TaskArgs(task="jsonl", data=str(data)))


def test_missing_data_names_the_option():
    with pytest.raises(ValueError, match="--data"):
        split_files(None, "gsm8k")


def test_a_file_is_the_split_named_by_its_stem_and_train(tmp_path, write):
    path = write(tmp_path / "mydata.jsonl", [ROW])
    assert split_files(path, "jsonl") == {"mydata": path, "train": path}
    task = jsonl_task(path)
    assert task.splits == ("mydata", "train")
    assert [ex.question for ex in task.examples("train")] == ["1+1?"]  # `rairl sft --data mydata.jsonl` trains on it
    assert task.eval_splits == ("mydata",)
    with pytest.raises(
        ValueError,
        match=r"no split 'test' in --data .*mydata.jsonl: a single file serves as the "
        r"split its name gives \('mydata'\) and as 'train'; for 'test' pass a file "
        r"named test.jsonl",
    ):
        task.examples("test")


def test_a_folder_gives_one_split_per_jsonl_file(tmp_path, write):
    write(tmp_path / "train.jsonl", [ROW])
    write(tmp_path / "test.jsonl", [ROW])
    (tmp_path / "README.md").write_text("not data")
    task = jsonl_task(tmp_path)
    assert set(task.splits) == {"train", "test"}
    assert task.eval_splits == ("test",)


def test_missing_path_and_empty_folder_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        split_files(tmp_path / "nope.jsonl", "jsonl")
    with pytest.raises(DataError, match="no .jsonl files"):
        split_files(tmp_path, "jsonl")


def test_unknown_split_suggests_the_closest(tmp_path, write):
    write(tmp_path / "train.jsonl", [ROW])
    write(tmp_path / "test.jsonl", [ROW])
    with pytest.raises(ValueError, match="unknown split 'tset'.*Did you mean 'test'"):
        jsonl_task(tmp_path).examples("tset")


def test_splits_load_lazily_and_once(tmp_path, write):
    write(tmp_path / "train.jsonl", [ROW, ROW])
    write(tmp_path / "test.jsonl", ["{broken"])
    task = jsonl_task(tmp_path)  # constructing reads nothing
    assert len(task.examples("train")) == 2
    assert task.examples("train") is task.examples("train")
    assert [ex.id for ex in task.examples("train")] == ["jsonl-train-1", "jsonl-train-2"]
    with pytest.raises(DataError) as err:
        task.examples("test")
    assert (err.value.path, err.value.line) == (str(tmp_path / "test.jsonl"), 1)


def test_bad_json_names_file_and_line(tmp_path, write):
    path = write(tmp_path / "train.jsonl", [ROW, "", '{"question": "x", '])
    with pytest.raises(DataError, match=r"train.jsonl, line 3: not valid JSON"):
        jsonl_task(path).examples("train")


def test_empty_file_is_an_error(tmp_path, write):
    path = write(tmp_path / "train.jsonl", [""])
    with pytest.raises(DataError, match="no examples"):
        jsonl_task(path).examples("train")


def test_with_answer_line():
    assert with_answer_line("a\nb\n\n", "7") == "a\nb\n#### 7"
    assert with_answer_line("  ", "7") == "#### 7"
