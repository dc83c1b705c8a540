"""Pooling per-seed evaluation rows: the sample size counts each question once, and a split is read only where
every run that holds the method has it."""

from rairl.demo.results import compare, pool_eval


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
