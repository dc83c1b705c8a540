"""First-error localisation (`rairl localize`, rairl.inference.localize and .benchmarks)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rairl.cli import main
from rairl.evaluation.processbench import processbench_metrics
from rairl.inference.labelled import SourceSpec, build, joined
from rairl.inference.localize import calibrate_threshold
from rairl.scores import joined_spans, predict
from rairl.tasks import TaskArgs, get_task

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ARITH = ["--n_eval", "6", "--n_train", "50"]

# four traces' step scores and first-error labels
STEPS = [[1.0, -1.0, 2.0], [0.5, 0.5], [-2.0, 1.0], [0.2, -0.5]]
LABELS = [1, -1, 0, -1]


@pytest.fixture(scope="module")
def saved(saved_tiny):
    """A tiny saved discriminator and its policy; 4096 positions so that ProcessBench traces fit."""
    return saved_tiny(4096)


def run_localize(saved, out, *args) -> dict:
    code = main(
        [
            "localize",
            "--reward_model",
            str(saved / "disc"),
            "--policy",
            str(saved / "policy"),
            "--output_dir",
            str(out),
            *args,
        ]
    )
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def read_predictions(out) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_prediction_is_the_first_step_below_the_threshold_and_feeds_processbench_metrics():
    predicted = predict(STEPS, 0.0)
    assert predicted == [1, -1, 0, 1]
    m = processbench_metrics(predicted, LABELS)
    assert m["acc_error"]["mean"] == 1.0 and m["acc_correct"]["mean"] == 0.5
    assert m["f1"]["mean"] == pytest.approx(2 / 3)


def test_calibration_picks_the_threshold_with_the_best_f1():
    # candidates are midpoints of the sorted scores; τ = -0.75 flags t0 at step 1 and t2 at step 0 only: F1 = 1
    tau, f1 = calibrate_threshold(STEPS, LABELS)
    assert tau == pytest.approx(-0.75) and f1 == pytest.approx(1.0)
    with pytest.raises(ValueError, match="has 2 erroneous and 0 correct"):
        calibrate_threshold(STEPS[::2], LABELS[::2])


def test_joined_spans_mark_each_step():
    steps = ("a\nb", "cd", "e")
    assert joined_spans(steps) == [(0, 3), (4, 6), (7, 8)]
    assert [("a\nb\ncd\ne")[s:e] for s, e in joined_spans(steps)] == list(steps)


def test_injected_benchmark_pairs_each_perturbed_expert_with_its_clean_twin():
    task = get_task(TaskArgs(n_eval=6, n_train=50))
    bench = build("injected", task, SourceSpec("test", limit=4, seed=3))
    assert len(bench.traces) == 8 and bench.dropped == 0
    for bad, clean in zip(bench.traces[::2], bench.traces[1::2]):
        ex = next(e for e in task.examples("test") if e.id == bad.meta["example_id"])
        assert clean.label == -1 and joined(clean) == ex.expert
        assert bad.steps[: bad.label] == clean.steps[: bad.label] and bad.steps[bad.label] != clean.steps[bad.label]
        assert task.first_error(joined(bad), ex) == bad.label  # arith's checker agrees with the injected step
    again = build("injected", task, SourceSpec("test", limit=4, seed=3))
    assert [t.steps for t in again.traces] == [t.steps for t in bench.traces]  # seeded
    with pytest.raises(ValueError, match="unknown source 'injcted'.*Did you mean 'injected'"):
        build("injcted", task, SourceSpec())


def test_localize_injected_with_calibration(saved, tmp_path):
    out = tmp_path / "injected"
    m = run_localize(saved, out, "--source", "injected", "--limit", "3", "--calibrate", *ARITH)
    assert m["n_error"] == m["n_correct"] == 3 and m["n_val_traces"] == 12
    for name in ("reward", "likelihood"):
        assert m[name]["calibrated"] and 0.0 <= m[name]["val_f1"] <= 1.0
        assert m[name]["f1"]["n"] == 6 and m[name]["acc_error"]["n"] == 3
        assert set(m[name]["by_perturbation"]) <= {"operator", "number", "carry", "drop", "answer"}
    preds = read_predictions(out)
    assert len(preds) == 6
    for p in preds:
        assert set(p) >= {"id", "steps", "label", "predicted", "step_scores", "likelihood_predicted"}
        assert len(p["step_scores"]) == len(p["steps"]) == len(p["likelihood_step_scores"])
        assert p["predicted"] == predict([p["step_scores"]], m["reward"]["threshold"])[0]
        assert len(p["learned_step_scores"]) == len(p["steps"])
    # beyond the likelihood: agreement over the 6 test traces, the residual fitted on the 12 validation traces
    same = [float(p["predicted"] == p["likelihood_predicted"]) for p in preds]
    assert m["agreement"]["same_prediction"]["mean"] == pytest.approx(sum(same) / 6)
    assert m["residual"]["fit"].startswith("fitted on") and m["residual"]["groups"] == 3  # the erroneous traces
    assert "same predicted first error as the likelihood" in m["residual"]["summary"]


def test_localize_natural_from_a_samples_file(saved, tmp_path):
    task = get_task(TaskArgs(n_eval=6, n_train=50))
    rng, rows = random.Random(0), []
    for ex in task.examples("test")[:3]:
        lines = ex.expert.split("\n")
        wrong = "\n".join(lines[:1] + ["1+1=3"] + lines[2:])
        for j, response in enumerate([ex.expert, wrong, lines[0]]):  # right, wrong at step 1, a missing step
            rows.append(
                {
                    "id": ex.id,
                    "sample": j,
                    "prompt": task.prompt(ex),
                    "response": response,
                    "correct": j == 0,
                    "first_error": task.first_error(response, ex),
                }
            )
    rng.shuffle(rows)
    src = tmp_path / "samples.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = run_localize(saved, tmp_path / "natural", "--source", "natural", "--samples", str(src), *ARITH)
    assert (m["n_error"], m["n_correct"], m["dropped"]) == (3, 3, 3)  # a missing step cannot be localised
    assert {p["label"] for p in read_predictions(tmp_path / "natural")} == {-1, 1}


def test_localize_natural_generated_by_the_policy(saved, tmp_path):
    m = run_localize(
        saved,
        tmp_path / "gen",
        "--source",
        "natural",
        "--limit",
        "2",
        "--n_samples",
        "2",
        "--max_new_tokens",
        "12",
        *ARITH,
    )
    assert m["n_traces"] + m["dropped"] == 4


def test_localize_file_source_on_a_handmade_processbench_file(saved, tmp_path):
    rows = [
        {"id": "a", "problem": "1+1?", "steps": ["1+1=2", "So:\n#### 2"], "label": -1},
        {"id": "b", "problem": "2+2?", "steps": ["2+2=5", "#### 5"], "label": 0},
    ]
    src = tmp_path / "pb.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = run_localize(saved, tmp_path / "file", "--source", "file", "--file", str(src), "--tau", "1e9")
    assert m["reward"]["acc_error"]["mean"] == 1.0 and m["reward"]["acc_correct"]["mean"] == 0.0  # all flagged at 0
    preds = read_predictions(tmp_path / "file")
    assert preds[0]["prompt"] == "Question: 1+1?\nAnswer:\n" and preds[0]["steps"] == rows[0]["steps"]
    assert len(preds[0]["step_scores"]) == 2  # the newline inside step 1 does not split it


def test_localize_file_source_on_processbench_gsm8k(saved, tmp_path):
    path = DATA / "processbench" / "gsm8k.jsonl"
    if not path.is_file():
        pytest.skip(f"ProcessBench data not found at {path}")
    src = tmp_path / "gsm8k5.jsonl"
    src.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:5]))
    m = run_localize(saved, tmp_path / "pb", "--source", "file", "--file", str(src))
    assert m["n_traces"] == 5
    preds = read_predictions(tmp_path / "pb")
    assert all(len(p["step_scores"]) == len(p["steps"]) for p in preds)


def test_config_errors_say_what_to_fix(saved, tmp_path, capsys):
    base = ["localize", "--reward_model", str(saved / "disc"), "--output_dir", str(tmp_path)]
    assert main(base + ["--source", "file"]) == 1
    assert "--source file needs --file" in capsys.readouterr().err
    assert main(base + ["--source", "file", "--file", "x.jsonl", "--calibrate"]) == 1
    assert "needs --val_file" in capsys.readouterr().err
    assert main(base + ["--source", "natural", *ARITH]) == 1
    assert "give --samples FILE or --policy PATH" in capsys.readouterr().err
    assert main(base + ["--perturbations", "carry,swap"]) == 1
    assert "unknown perturbation(s) ['swap']" in capsys.readouterr().err
