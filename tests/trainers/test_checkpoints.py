"""rairl.trainers.checkpoints: checkpoints written whole then renamed, resume from the newest complete one, a
finished run not trained again."""

from __future__ import annotations

import json

import pytest

from rairl.cli import main
from rairl.io import DataError
from rairl.trainers.checkpoints import (
    COMPLETE_FILE,
    checkpoint_problem,
    checkpoint_step,
    mark_complete,
    resolve_resume,
)


def fake_checkpoint(folder, step: int, complete: bool = True):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    if complete:
        mark_complete(folder)
    return folder


def test_resolve_resume_takes_the_newest_complete_checkpoint(tmp_path, caplog):
    assert resolve_resume(None, tmp_path) is None
    assert resolve_resume("auto", tmp_path / "missing") is None
    with pytest.raises(FileNotFoundError, match="no complete checkpoint-STEP folder"):
        resolve_resume("last", tmp_path)
    fake_checkpoint(tmp_path / "checkpoint-2", 2)
    fake_checkpoint(tmp_path / "checkpoint-10", 10)
    fake_checkpoint(tmp_path / "checkpoint-16", 16, complete=False)  # a save that was killed
    truncated = fake_checkpoint(tmp_path / "checkpoint-12", 12)
    (truncated / "model.safetensors").write_bytes(b"x" * 3)
    (tmp_path / ".staging-checkpoint-18").mkdir()
    with caplog.at_level("WARNING"):
        assert resolve_resume("last", tmp_path) == str(tmp_path / "checkpoint-10")  # by step number, not name
    assert f"checkpoint-16: no {COMPLETE_FILE}" in caplog.text
    assert "checkpoint-12: model.safetensors has 3 bytes, 10 were written" in caplog.text
    assert not (tmp_path / ".staging-checkpoint-18").exists()  # what a killed save left is cleared
    assert resolve_resume(str(tmp_path / "checkpoint-2"), tmp_path) == str(tmp_path / "checkpoint-2")
    with pytest.raises(FileNotFoundError, match="not a Trainer checkpoint"):
        resolve_resume(str(tmp_path), tmp_path)


def test_a_folder_holding_a_run_is_not_trained_over_without_being_asked(tmp_path):
    """Without --resume_from_checkpoint, a checkpoint or a finished run in output_dir is refused, saying how to
    resume or start over; `auto` and `last` continue it."""
    fake_checkpoint(tmp_path / "checkpoint-4", 4)
    with pytest.raises(FileExistsError, match=r"already holds a run's checkpoints \(checkpoint-4\): pass "
                                              "--resume_from_checkpoint last to continue it"):  # fmt: skip
        resolve_resume(None, tmp_path)
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "checkpoint-4")
    (tmp_path / "train_summary.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"already holds a finished run \(train_summary.json\).*start over"):
        resolve_resume(None, tmp_path)
    fresh = tmp_path / "fresh"
    (fresh / "log.jsonl").parent.mkdir()
    (fresh / "log.jsonl").write_text("")  # a run killed before its first checkpoint: nothing to resume
    assert resolve_resume(None, fresh) is None


def test_what_a_killed_final_save_left_is_removed_at_start(tmp_path):
    (tmp_path / ".final").mkdir()  # save_final's staging folder, files half moved out
    (tmp_path / ".final" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "..final.k3j2x9.tmp").mkdir()  # its rairl.io.atomic_dir temporary, killed while written
    (tmp_path / ".staging-checkpoint-8").mkdir()
    assert resolve_resume(None, tmp_path) is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("state", ["{not json", "[]", '{"global_step": "4"}', '{"epoch": 1}'])
def test_an_unreadable_trainer_state_names_its_file(tmp_path, state):
    folder = fake_checkpoint(tmp_path / "checkpoint-4", 4)
    (folder / "trainer_state.json").write_text(state)
    with pytest.raises(DataError, match=r"checkpoint-4/trainer_state.json"):
        checkpoint_step(folder)


def test_checkpoint_problem_names_the_missing_file(tmp_path):
    folder = fake_checkpoint(tmp_path / "checkpoint-1", 1)
    assert checkpoint_problem(folder) is None
    (folder / "model.safetensors").unlink()
    assert checkpoint_problem(folder) == "model.safetensors is missing"
    (folder / COMPLETE_FILE).write_text("[]")
    assert checkpoint_problem(folder) == f"{COMPLETE_FILE} is not a file list"
    (folder / COMPLETE_FILE).write_text('{"files": ["model.safetensors"]}')
    assert checkpoint_problem(folder) == f"{COMPLETE_FILE} is not a file list"
    (folder / COMPLETE_FILE).write_text('{"files": ' + "[" * 5000 + "}")  # json.loads would raise RecursionError
    assert checkpoint_problem(folder).startswith(f"{COMPLETE_FILE} is not a file list (")


def test_sft_checkpoints_are_marked_complete_and_a_finished_run_is_not_trained_again(tmp_path, caplog, small_sft_run):
    out = tmp_path / "sft"
    common = ["--output_dir", str(out), "--save_steps", "2", "--report_to", "none", *small_sft_run]
    assert main(["sft", "--max_steps", "4", *common]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith((".", "checkpoint"))) == [
        "checkpoint-2",
        "checkpoint-4",
    ]  # no staging folder left
    assert all(checkpoint_problem(out / name) is None for name in ("checkpoint-2", "checkpoint-4"))
    log_lines = (out / "log.jsonl").read_text().count("\n")
    assert main(["sft", "--max_steps", "4", *common]) == 1  # not again from step 0 over the finished run
    with caplog.at_level("INFO"):
        assert main(["sft", "--max_steps", "4", "--resume_from_checkpoint", "last", *common]) == 0
    assert "the run is finished, nothing left to train" in caplog.text
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 4
    assert (out / "log.jsonl").read_text().count("\n") == log_lines  # no step was trained or logged


@pytest.mark.slow
def test_sft_killed_at_random_points_resumes_to_the_uninterrupted_weights(tmp_path):
    """benchmarks/fault_injection.py with one kill point of `rairl sft`, inside a checkpoint write (the full sweep:
    10 each of sft and airl, half of them at random moments)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fault_injection.py"
    spec = importlib.util.spec_from_file_location("fault_injection", script)
    fault = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fault)
    results = fault.main(
        [
            "--commands",
            "sft",
            "--kills",
            "1",
            "--seed",
            "5",
            "--root",
            str(tmp_path / "runs"),
            "--output",
            str(tmp_path / "fault.json"),
        ]
    )["sft"]
    assert results["killed"] == results["inside_save"] == results["resumed_ok"] == 1, results["points"]
    assert results["max_abs_diff"] == 0.0
