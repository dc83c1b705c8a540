import pytest

from rairl.tasks import TASKS, TaskArgs, get_task
from rairl.tasks.arith import ArithTask


def test_every_task_is_registered():
    assert {"arith", "gsm8k", "countdown", "mmlu_pro", "medreason", "jsonl"} <= set(TASKS)


def test_default_task_is_arith():
    assert isinstance(get_task(TaskArgs(n_train=10, n_eval=5)), ArithTask)


def test_unknown_task_lists_known_names_and_suggests_the_closest():
    with pytest.raises(ValueError, match=r"unknown task 'gsm8'; known: \[.*'countdown'.*Did you mean 'gsm8k'\?"):
        get_task(TaskArgs(task="gsm8"))
    with pytest.raises(ValueError, match="Did you mean 'mmlu_pro'"):
        get_task(TaskArgs(task="mmlu-pro"))


def test_unknown_task_without_close_match_has_no_suggestion():
    with pytest.raises(ValueError) as err:
        get_task(TaskArgs(task="zzzzzz"))
    assert "Did you mean" not in str(err.value)


@pytest.mark.parametrize("name", ["gsm8k", "countdown", "mmlu_pro", "medreason", "jsonl"])
def test_file_tasks_need_data(name):
    with pytest.raises(ValueError, match=f"task '{name}' reads its examples from files: pass --data"):
        get_task(TaskArgs(task=name))
