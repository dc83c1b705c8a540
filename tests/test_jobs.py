"""rairl.jobs: jobs run in fresh single-thread processes, after the jobs they name, with their output in a log."""

import os

import pytest

from rairl.jobs import Job, run_jobs


def record(path: str, text: str) -> dict:
    """Append `text` to `path`; return this process's id and torch thread count."""
    import torch

    with open(path, "a") as f:
        f.write(text)
    print(f"wrote {text}")
    return {"pid": os.getpid(), "threads": torch.get_num_threads()}


def fail(message: str) -> None:
    raise ValueError(message)


def test_dependency_order_fresh_processes_and_logs(tmp_path):
    order = tmp_path / "order.txt"
    jobs = [
        Job("c", record, dict(path=str(order), text="c"), after=("a", "b"), log=tmp_path / "c.log"),
        Job("a", record, dict(path=str(order), text="a")),
        Job("b", record, dict(path=str(order), text="b"), after=("a",)),
    ]
    results, seconds = run_jobs(jobs, workers=2)
    assert set(seconds) == {"a", "b", "c"} and all(s >= 0 for s in seconds.values())
    assert order.read_text() == "abc"  # b waits for a, c for both
    assert len({r["pid"] for r in results.values()}) == 3 and os.getpid() not in {r["pid"] for r in results.values()}
    assert {r["threads"] for r in results.values()} == {1}
    assert "wrote c" in (tmp_path / "c.log").read_text()


def test_a_free_worker_takes_the_first_ready_job_in_list_order(tmp_path):
    order = tmp_path / "order.txt"
    names = ["root", "late", "z", "y", "x"]  # every job but the root waits for it; the list is the priority
    jobs = [Job(n, "tests.test_jobs:record", dict(path=str(order), text=n[0]), after=("root",) * (n != "root"))
            for n in names]  # fmt: skip
    run_jobs(jobs, workers=1)
    assert order.read_text() == "rlzyx"


def test_a_failing_job_names_itself_and_its_log(tmp_path):
    with pytest.raises(ValueError, match=r"job bad: no good \(its log: .*bad.log\)"):
        run_jobs([Job("bad", fail, dict(message="no good"), log=tmp_path / "bad.log")], workers=1)


def test_bad_graphs_are_refused():
    with pytest.raises(ValueError, match="missing"):
        run_jobs([Job("a", fail, dict(message="x"), after=("nope",))], workers=1)
    with pytest.raises(ValueError, match="cycle"):
        run_jobs([Job("a", fail, dict(message="x"), after=("b",)), Job("b", fail, dict(message="x"), after=("a",))], 1)


def test_preloaded_workers_are_fresh_forks_with_the_threads_asked_for(tmp_path):
    order = tmp_path / "order.txt"
    jobs = [
        Job("a", "tests.test_jobs:record", dict(path=str(order), text="a"), threads=2),
        Job("b", "tests.test_jobs:record", dict(path=str(order), text="b"), after=("a",)),
    ]
    results, _ = run_jobs(jobs, workers=1, preload=("torch",))
    assert order.read_text() == "ab"
    assert results["a"]["pid"] != results["b"]["pid"]  # one job per process, even on one worker
    assert (results["a"]["threads"], results["b"]["threads"]) == (2, 1)
