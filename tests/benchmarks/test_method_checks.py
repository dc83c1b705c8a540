"""The method checks in benchmarks/ (discriminator separation, R-AIRL before/after) run end to end on a tiny saved
policy and write results of the documented shape; their figures mean nothing at this size and are not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def tiny_policy(saved_tiny) -> Path:
    return saved_tiny(512) / "policy"


def run(script: str, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_disc_separation_reports_each_variant_with_a_ci(tiny_policy, tmp_path):
    out = tmp_path / "separation.json"
    run(
        "disc_separation.py",
        "--policy",
        str(tiny_policy),
        "--steps",
        "2",
        "--batch",
        "8",
        "--n_negatives",
        "8",
        "--eval_n",
        "4",
        "--variants",
        "plain-random,likelihood-sft",
        "--output",
        str(out),
    )
    results = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in results] == ["plain-random", "likelihood-sft"]
    assert all(r["accuracy"]["n"] == 8 and len(r["accuracy"]["ci95"]) == 2 for r in results)


def test_airl_before_after_pairs_each_run_with_the_base(tiny_policy, tmp_path):
    run(
        "airl_before_after.py",
        "--base",
        str(tiny_policy),
        "--methods",
        "dense",
        "--seeds",
        "0",
        "--max_steps",
        "1",
        "--batch",
        "8",
        "--disc_warmup_steps",
        "0",
        "--output_dir",
        str(tmp_path),
    )
    results = json.loads((tmp_path / "results.json").read_text())
    (entry,) = results["methods"]["dense"]["per_seed"]
    n = results["before"]["test"]["n"]
    assert entry["test"]["diff"]["n"] == n and entry["test"]["after"]["n"] == n
    assert set(entry["corr"]) <= {"final", "last10_mean"}
    assert (tmp_path / "dense_s0" / "train_summary.json").is_file()


def test_method_check_tables_every_variant_and_form(tiny_policy, tmp_path):
    run(
        "method_check.py",
        "--smoke",
        "--task",
        "countdown_gen",
        "--base",
        str(tiny_policy),
        "--seeds",
        "0",
        "--variants",
        "reference_zero",
        "--output",
        str(tmp_path),
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["task"] == "countdown_gen"
    forms = results["variants"]["reference_zero"]
    assert set(forms) == {"logit", "f"}
    for form, r in forms.items():
        assert "best_vs_likelihood" in r["rerank"] and r["rerank"]["pass@1"]["n"] == 8
        assert {f"{form}_injected", f"{form}_natural"} == set(r["localize"])
        assert r["localize"][f"{form}_injected"]["exact_vs_likelihood"]["n"] > 0
    (health,) = results["health"]["reference_zero"]
    assert len(health["likelihood_weights"]) == 2

    # disc_selection.py reads that folder: it keeps every checkpoint's discriminator and evaluates the best one
    run(
        "disc_selection.py",
        "--smoke",
        "--task",
        "countdown_gen",
        "--method_check",
        str(tmp_path),
        "--base",
        str(tiny_policy),
        "--seeds",
        "0",
        "--every",
        "1",
    )
    selection = json.loads((tmp_path / "selection" / "selection.json").read_text())
    assert set(selection["auc"]["0"]) == {"1"} and 0.0 <= selection["auc"]["0"]["1"] <= 1.0
    assert selection["variants"]["best_separation"]["steps"] == [1] == selection["variants"]["last"]["steps"]
    assert "best_vs_likelihood" in selection["variants"]["best_separation"]["f"]["rerank"]


def test_grpo_sweep_smoke_reports_each_row_against_its_base(tmp_path):
    out = tmp_path / "sweep"
    run("grpo_sweep.py", "--smoke", "--rows", "demo_before,annealed_base", "--workers", "1", "--output", str(out))
    results = json.loads((out / "results.json").read_text())
    assert set(results["rows"]) == {"demo_before", "annealed_base"}
    for row in results["rows"].values():
        assert {"validation_minus_base", "test_minus_base", "slope_per_100_steps"} <= set(row)
        assert row["validation_minus_base"]["n"] == 8  # n_eval questions × one seed, paired to its base


def test_reference_grpo_smoke_compares_both_trainers_with_cis(tmp_path):
    run("reference_grpo.py", "--smoke", "--output", str(tmp_path / "ref"), "--out", str(tmp_path), "--threads", "1")
    results = json.loads((tmp_path / "reference_grpo.json").read_text())
    for key in ("reference_minus_base", "trl_minus_base", "reference_minus_trl"):
        assert results[key]["n"] == 8 and len(results[key]["ci95"]) == 2
    assert {"seed0/reference", "seed0/trl"} == set(results["runs"])


def test_residual_study_smoke_reads_each_row_against_the_likelihood(tiny_policy, tmp_path):
    out = tmp_path / "study"
    run("residual_study.py", "--smoke", "--base", str(tiny_policy), "--rows", "default,plain", "--seeds", "0",
        "--output", str(out))  # fmt: skip
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert set(rows) == {"default", "plain"}
    for row in rows.values():
        assert {"auc_gain", "summary"} <= set(row["rerank"]["residual"]) and "same_pick" in row["rerank"]["agreement"]
        assert row["injected_exact_vs_likelihood"]["n"] > 0 and len(row["train_s"]) == 1


def test_training_curves_smoke_chooses_on_validation_and_reads_test_and_shift(tiny_policy, tmp_path):
    out = tmp_path / "curves"
    run("training_curves.py", "--smoke", "--base", str(tiny_policy), "--stage", "screen", "--output", str(out))
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["base"]) == {"validation", "test", "shift"}
    chosen = summary["regimes"]["full"]["chosen"]
    assert set(chosen) == {"sft", "grpo_verifier", "airl_dense", "airl_outcome"}
    for choice in chosen.values():
        assert {"test", "shift"} <= set(choice)


def test_training_curves_only_splits_the_limited_runs_by_regime(monkeypatch, tmp_path):
    """`--only tenth` runs the tenth regime's runs and no other (the full-data choices are read, not filtered)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import training_curves as tc

    calls = []
    flat = {b: {s: [0.5] for s in tc.SPLITS} for b in tc.SMOKE["budgets"]}
    monkeypatch.setattr(
        tc, "curve", lambda m, lr, seed, base, out, size, limited=None: calls.append((m, limited)) or flat
    )
    tc.collect("base", tmp_path, tc.SMOKE, "limited", {"tenth"})
    limited = {c for c in calls if c[1] is not None}
    assert limited == {("sft", "tenth"), ("airl_dense", "tenth")}
    calls.clear()
    tc.collect("base", tmp_path, tc.SMOKE, "limited", {"sft"})
    assert {c for c in calls if c[1] is not None} == {("sft", "tenth"), ("sft", "fiftieth")}


def test_base_spread_writes_runs_with_seed_threads_cpu_and_the_spread(tmp_path):
    run("base_spread.py", "--smoke", "--grpo", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path))
    data = json.loads((tmp_path / "base_spread.json").read_text())
    entry = data["recipes"]["old"]
    (only,) = entry["runs"]
    assert {"seed", "threads", "cpu", "validation", "test", "curve"} <= set(only) and only["threads"] == 1
    assert entry["spread"] == 0.0 and "environment" in data
    assert {"mean", "ci95", "n"} <= set(only["grpo_verifier"]["minus_base"])
