"""The speed benchmarks in benchmarks/: each script runs end to end with --smoke (tiny model, one repeat) as a
subprocess and writes its JSON; the figures themselves are never asserted (no timing assertions), only the facts
that do not depend on the machine (forced completion lengths, which weights a trainer holds, padding counts).
Also the shared helpers' arithmetic, by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import common  # noqa: E402
import scaling  # noqa: E402


def smoke(script: str, out: Path, *extra: str) -> dict:
    cmd = [sys.executable, str(BENCHMARKS / script), "--smoke", "--out", str(out), "--threads", "1", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "saved" in proc.stdout
    name = script.removesuffix(".py")
    path = out / f"{name}.json"
    if not path.is_file():  # profile_demo names its file after the phase
        (path,) = out.glob(f"{name}_*.json")
    data = json.loads(path.read_text())
    assert data["smoke"] is True and data["environment"]["versions"]["trl"]
    return data


def test_summarize_by_hand():
    s = common.summarize([3, 1, 2, 5, 4])
    assert (s["n"], s["median"], s["min"], s["max"], s["q1"], s["q3"]) == (5, 3, 1, 5, 2, 4)
    assert s["values"] == [3, 1, 2, 5, 4]  # in measurement order
    assert common.ratio({"median": 3.0}, {"median": 2.0}) == 1.5
    with pytest.raises(ValueError, match="no measurements"):
        common.summarize([])


def test_growth_exponent_by_hand():
    assert scaling.exponent([1, 2, 4], [3, 12, 48]) == pytest.approx(2.0)  # y = 3 x^2
    points = [
        {
            "completion_length": x,
            "results": {
                "v": {"step_s": {"median": 2 * x + x * x}, "parts_s": {"a": {"median": 2 * x}, "b": {"median": x * x}}}
            },
        }
        for x in (1, 2, 4)
    ]
    g = scaling.growth(points, "completion_length", "v")
    assert g["part_exponents"] == {"a": pytest.approx(1.0), "b": pytest.approx(2.0)}
    assert g["fastest_growing"] == "b" and g["share_at_largest"] == {
        "a": pytest.approx(8 / 24, abs=1e-3),
        "b": pytest.approx(16 / 24, abs=1e-3),
    }


def test_step_time_smoke(tmp_path):
    data = smoke("step_time.py", tmp_path)
    assert set(data["results"]) == {
        "grpo",
        "airl_disc_same",
        "airl_disc_half",
        "airl_disc_same_every2",
        "airl_separate",
        "airl_shared",
    }
    length = data["setup"]["completion_length"]
    for variant, r in data["results"].items():
        tokens = r["completion_tokens"]
        assert (tokens["min"], tokens["max"]) == (length, length), variant  # every sample exactly L tokens
        assert "policy_update" in r["parts_s"] and "generation" in r["parts_s"]
    half = data["results"]["airl_disc_half"]["discriminator_params"]
    assert half < data["results"]["airl_disc_same"]["discriminator_params"]
    assert set(data["ratio_vs_grpo"]) == set(data["results"]) - {"grpo"}


def test_serve_throughput_smoke(tmp_path):
    data = smoke("serve_throughput.py", tmp_path)
    assert set(data["served"]) == {"1", "4"} and data["in_process_traces_per_s"]["median"] > 0
    assert all(f["p99_ms"]["median"] >= f["p50_ms"]["median"] > 0 for f in data["served"].values())


def test_scoring_speed_smoke(tmp_path):
    data = smoke("scoring_speed.py", tmp_path)
    assert set(data["traces_per_s"]) == {"api", "token_rewards", "bare_sorted", "unsorted", "bare_unsorted"}
    assert data["traces"]["n"] == data["setup"]["n_traces"]
    pad = data["padding"]
    assert pad["sorted"]["real_tokens"] == pad["unsorted"]["real_tokens"]
    assert pad["sorted"]["computed_tokens"] <= pad["unsorted"]["computed_tokens"]  # sorted chunks waste least


def test_memory_smoke(tmp_path):
    data = smoke("memory.py", tmp_path)
    assert data["targets"]["airl"]["peak_rss_mib"]["median"] > 0
    facts = {f["case"]: f for f in data["reference_model"]}
    assert facts["kl0"]["ref_model_is_none"] and facts["kl0"]["policy_weight_copies"] == 1
    assert facts["kl_lora"]["ref_model_is_none"] and facts["kl_lora"]["policy_class"].startswith("Peft")
    assert facts["kl_lora"]["params"]["policy_trainable"] < facts["kl_lora"]["params"]["policy_total"]
    assert facts["kl_full"]["policy_weight_copies"] == 2
    assert facts["kl_full"]["params"]["ref_model"] == facts["kl_full"]["params"]["policy_total"]


@pytest.mark.slow
def test_memory_demo_smoke(tmp_path):
    data = smoke("memory.py", tmp_path, "--targets", "demo")
    assert data["targets"]["demo"]["peak_rss_mib"]["median"] > 0 and "demo_within_target" in data


def test_scaling_smoke(tmp_path):
    data = smoke("scaling.py", tmp_path)
    assert (tmp_path / "scaling.png").stat().st_size > 0
    assert [pt["completion_length"] for pt in data["sweeps"]["completion_length"]] == [4, 8]
    assert [pt["num_generations"] for pt in data["sweeps"]["num_generations"]] == [2, 4]
    assert set(data["growth"]) == {"completion_length", "num_generations"}


def test_profile_demo_smoke(tmp_path):
    data = smoke("profile_demo.py", tmp_path)
    assert data["phase"] == "airl_dense" and data["wall_s"]["n"] == 1
    assert data["cprofile_top_tottime"] and data["torch_top_self_cpu"]
    assert (tmp_path / "profile_demo_airl_dense.txt").is_file()


def test_tree_memory_follows_a_command_and_its_children(tmp_path):
    out = tmp_path / "memory.json"
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(2.5)'])"
    cmd = [sys.executable, str(BENCHMARKS / "tree_memory.py"), str(out), sys.executable, "-c", child]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    result = json.loads(out.read_text())
    assert result["rc"] == 0 and result["wall_s"] >= 2.5
    assert 0 < result["peak_tree_pss_gb"] <= result["peak_tree_rss_gb"]


def test_every_result_file_says_where_it_was_measured():
    """Each benchmarks/results/*.json carries `environment` (commit, versions, CPU, threads; or, for a figure measured
    before they were recorded, a note saying so)."""
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    missing = [f.name for f in sorted(results.glob("*.json")) if "environment" not in json.loads(f.read_text())]
    assert not missing, f"result files without an environment: {missing}"
