"""Pooling per-seed evaluation rows: the sample size counts each question once, and a split is read only where
every run that holds the method has it."""

from rairl.demo.results import compare, format_reference, format_selection, pool_eval, selection


def rows(correct: list[bool], samples: int) -> dict[str, list[dict]]:
    return {
        "greedy": [{"id": str(i), "correct": c} for i, c in enumerate(correct)],
        "samples": [{"id": str(i), "correct": c} for i, c in enumerate(correct) for _ in range(samples)],
    }


def test_one_sample_per_question_counts_each_question_once():
    per_seed = [{"seed": 0, "rows": {"base": {"test": rows([True, False, True], 1)}}}]
    pooled = pool_eval(per_seed, ["base"], 1)["base"]["id"]
    assert set(pooled) == {"greedy", "pass@1"} and pooled["pass@1"]["n"] == 3
    per_seed[0]["rows"]["base"]["test"] = rows([True, False, True], 4)
    assert pool_eval(per_seed, ["base"], 4)["base"]["id"]["pass@4"]["n"] == 3


def test_a_split_missing_from_one_run_is_left_out_not_a_crash():
    per_seed = [
        {"seed": 0, "rows": {"sft": {"test": rows([True, False], 1), "shift": rows([True, True], 1)},
                             "base": {"test": rows([False, False], 1)}}},
        {"seed": 1, "rows": {"sft": {"test": rows([True, True], 1)}}},
    ]  # fmt: skip
    assert set(pool_eval(per_seed, ["sft"], 1)["sft"]) == {"id"}
    diffs = compare(per_seed, ["sft"], "base")
    assert set(diffs) == {"sft_minus_base_id"} and diffs["sft_minus_base_id"]["n"] == 4


def test_selection_flags_the_runs_whose_best_step_is_below_the_base():
    best = {"seed0/sft": {"step": 20, "accuracy": 0.4, "curve": []}, "seed0/grpo": {"step": 5, "accuracy": 0.6}}
    chosen = selection(0.5, best)
    assert chosen["below_base"] == ["seed0/sft"]
    results = {"selection": chosen}
    assert "flagged: seed0/sft end below the base" in format_selection(results)


def test_the_reference_line_says_whether_c1_is_judged_and_why_not():
    summary = lambda mean, lo, hi: {"mean": mean, "ci95": [lo, hi], "n": 128}  # noqa: E731
    log = {"rewards/correctness/mean": {"first_third": 0.30, "last_third": 0.31}}
    results = {
        "comparisons": {"grpo_verifier_minus_base_id": summary(0.01, -0.02, 0.04)},
        "training_logs": {"seed0/grpo_verifier": log},
        "selection": {"runs": {"seed0/grpo_verifier": {"step": 30, "accuracy": 0.3}}},
    }
    line = format_reference(results)
    assert line.startswith("C1 not judged") and "0.30 → 0.31" in line and "[30]" in line
    results["comparisons"]["grpo_verifier_minus_base_id"] = summary(0.12, 0.08, 0.16)
    assert format_reference(results).startswith("C1 judged: verifier GRPO moves +0.120")
