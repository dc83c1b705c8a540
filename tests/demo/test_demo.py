"""`rairl demo --fast`: the whole pipeline end to end in about a minute, checked against the results schema."""

import json

import pytest

from rairl.cli import main
from rairl.commands.demo import Config
from rairl.demo.config import METHODS
from rairl.demo.results import format_claims, verdict

SUMMARY = {"mean", "ci95", "n"}


def is_summary(entry) -> bool:
    return isinstance(entry, dict) and SUMMARY <= set(entry) and len(entry["ci95"]) == 2


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--fast", "--output_dir", str(out), "--workers", "1"]) == 0
    return out


def test_results_follow_the_documented_schema(demo_dir):
    results = json.loads((demo_dir / "results.json").read_text())
    assert results["seeds"] == [0, 1] and results["wall_time_s"] > 0
    for method in METHODS:
        for split in ("id", "ood"):
            assert is_summary(results["training"][method][split]["pass@1"]), (method, split)
        for split in ("id", "shift", "ood"):
            assert is_summary(results["training"][method][split]["greedy"]), (method, split)
        if method not in ("base", "sft"):
            assert is_summary(results["comparisons"][f"{method}_minus_sft_shift"]), method
    rerank = results["rerank"]
    assert rerank["n"] == 4
    for key in ("pass@1", "random", "majority", "likelihood", "reward_mean", "reward_min", "oracle"):
        assert is_summary(rerank[key]), key
    for source in ("injected", "natural"):
        for key in ("acc_error", "acc_correct", "f1"):
            assert SUMMARY <= set(results["localize"][source][key])
    assert set(results["transfer"]) == {"rerank_airl_policy", "rerank_ood", "localize_ood"}
    assert {c["claim"] for c in results["claims"]} and all("holds" in c for c in results["claims"])
    # what the reward adds beyond the likelihood, beside the reranking and localisation claims
    agreement, residual = rerank["agreement"], rerank["residual"]
    assert (
        agreement["versus"] == "likelihood/min"
        and is_summary(agreement["same_pick"])
        and is_summary(agreement["spearman"])
    )
    assert is_summary(residual["auc_gain"]) and "same pick as the likelihood on" in residual["summary"]
    for source in ("injected", "natural"):
        assert "same predicted first error as the likelihood" in results["localize"][source]["residual"]["summary"]
    beyond = [c for c in results["claims"] if "beyond ℓ" in c["claim"]]
    assert [c["claim"].split(":")[0] for c in beyond] == ["rerank", "localise injected", "localise natural"]
    printed = format_claims(results)  # the plain words under the table, one line per use
    assert "beyond the base policy's likelihood" in printed and f"  rerank: {beyond[0]['note']}" in printed


def test_results_say_where_they_were_measured_and_which_steps_were_kept(demo_dir):
    results = json.loads((demo_dir / "results.json").read_text())
    env = results["environment"]
    assert env["cpu"] and env["versions"]["transformers"] and env["torch_threads"] == 1 and "commit" in env["git"]
    chosen = results["selection"]
    assert set(chosen["runs"]) == {f"seed{s}/{m}" for s in (0, 1) for m in METHODS[1:]}
    for name, best in chosen["runs"].items():
        steps = [point["step"] for point in best["curve"]]
        assert best["step"] in steps and best["accuracy"] == max(p["accuracy"] for p in best["curve"]), name
        assert (best["accuracy"] < chosen["base_validation_greedy"]) == (name in chosen["below_base"])


def test_every_figure_pools_the_seeds(demo_dir):
    """n counts questions × seeds for trained policies, questions alone for the one base policy."""
    results = json.loads((demo_dir / "results.json").read_text())
    n_eval = Config(fast=True).n_eval
    assert results["training"]["sft"]["id"]["greedy"]["n"] == 2 * n_eval
    assert results["training"]["base"]["id"]["greedy"]["n"] == n_eval
    assert results["rerank"]["pass@1"]["n"] == 2 * n_eval


def test_demo_writes_the_report(demo_dir):
    html = (demo_dir / "report.html").read_text()
    assert "heatmap" in html and "<img" in html
    assert 'class="tok"' in html and "No token rewards saved" not in html  # colours from the saved token rewards
    assert list(demo_dir.glob("report_images/*.png"))


def test_fast_mode_keeps_explicit_seeds():
    assert Config(fast=True, seeds="3").seed_list == [3]
    with pytest.raises(ValueError, match="base_fraction"):
        Config(base_fraction=0.0)
    with pytest.raises(ValueError, match="threads must be at least 1"):
        Config(threads=0)
    with pytest.raises(ValueError, match=r"--task must be a generated task \(arith, countdown_gen\), got 'gsm8k'"):
        Config(task="gsm8k")


@pytest.mark.parametrize(
    "ci, threshold, expected",
    [
        ([0.01, 0.05], 0.0, "yes"),
        ([0.0, 0.05], 0.0, "yes"),
        ([-0.02, 0.05], 0.0, "unclear"),
        ([-0.05, -0.01], 0.0, "no"),
        ([0.80, 0.86], 0.861, "no"),
        ([None, None], 0.0, "unclear"),
    ],
)
def test_a_claim_holds_only_when_its_whole_interval_clears_the_bar(ci, threshold, expected):
    assert verdict({"mean": None, "ci95": ci, "n": 10}, threshold) == expected
