"""The torch-free core of scores and picks (rairl.scores): aggregations of token values into step and trace scores,
picks and first errors, hand-computed; the core imports no model code."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from rairl.scores import (
    AGGREGATIONS,
    NonFiniteScore,
    aggregate,
    answer_span,
    answer_token_mask,
    best_index,
    first_below,
    joined_spans,
    predict,
    search_score,
    step_scores,
    step_token_ranges,
    top_k,
    trace_views,
)
from rairl.traces import step_end_tokens

R = np.array([1.0, -2.0, 3.0, 0.5])
ANSWER = np.array([False, False, True, True])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mean", 0.625),
        ("min", -2.0),
        ("last", 0.5),
        ("sum", 2.5),
        ("discounted", 0.125 * 1 + 0.25 * -2 + 0.5 * 3 + 1 * 0.5),  # γ = 0.5: Σ γ^(n-t) r_t = 1.625
        ("answer_span", 1.75),  # mean of the two answer-line tokens (3, 0.5)
    ],
)
def test_each_aggregation_hand_computed(name, expected):
    assert aggregate(name, R, ANSWER, gamma=0.5) == pytest.approx(expected)


def test_registry_holds_the_six_aggregations():
    assert sorted(AGGREGATIONS) == ["answer_span", "discounted", "last", "mean", "min", "sum"]


def test_discounted_interpolates_last_and_sum_and_stays_finite_on_long_traces():
    assert aggregate("discounted", R, gamma=0.0) == pytest.approx(aggregate("last", R))
    assert aggregate("discounted", R, gamma=1.0) == pytest.approx(aggregate("sum", R))
    long = np.full(20_000, 1.0)
    assert aggregate("discounted", long, gamma=0.99) == pytest.approx(1 / (1 - 0.99), rel=1e-6)  # geometric series


def test_answer_span_defaults_to_the_last_token():
    assert aggregate("answer_span", R) == pytest.approx(0.5)


def test_nan_or_inf_raises_with_the_trace_index():
    with pytest.raises(NonFiniteScore, match="non-finite reward at response token"):
        aggregate("mean", np.array([1.0, math.nan]))
    with pytest.raises(NonFiniteScore) as err:
        trace_views([R, np.array([0.0, math.inf])], [[1], [0]], [ANSWER, np.array([True, True])], aggregates=["mean"])
    assert err.value.index == 1


def test_unknown_names_suggest_the_close_one():
    with pytest.raises(ValueError, match="Did you mean 'mean'"):
        aggregate("mena", R)
    with pytest.raises(ValueError, match="unknown step_reduce 'minimum'"):
        step_scores(R, [1, 3], "minimum")


def test_step_token_ranges_and_step_scores():
    # step 1 ends inside the token that ended step 0: it owns that one token
    assert step_token_ranges([2, 2, 5], 7) == [range(0, 3), range(2, 3), range(3, 6)]
    values = np.array([5.0, -1.0, 2.0, 4.0, -3.0, 1.0, 9.0])
    assert step_scores(values, [2, 2, 5], "last") == [2.0, 2.0, 1.0]
    assert step_scores(values, [2, 2, 5], "min") == [-1.0, 2.0, -3.0]
    with pytest.raises(ValueError, match="non-decreasing"):
        step_token_ranges([3, 1], 7)


def test_step_that_ends_mid_token_maps_to_that_token(piece_tokenizer):
    # "7\n#" straddles the end of step 0 ("3+4=7") and the start of the answer line
    tok = piece_tokenizer(["3+4=", "7\n#", "### "])
    response = "3+4=7\n#### 7"
    enc = tok(response, add_special_tokens=False, return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["3+4=", "7\n#", "### ", "7"]
    ends = step_end_tokens([(0, 5), (6, 12)], enc["offset_mapping"])
    assert ends == [1, 3]
    values = np.array([1.0, -4.0, 2.0, 0.5])
    assert step_scores(values, ends, "last") == [-4.0, 0.5]
    assert step_scores(values, ends, "min") == [-4.0, 0.5]  # step 1 owns tokens 2..3
    # the answer line "#### 7" overlaps tokens 1 ("7\n#"), 2 and 3
    assert answer_token_mask(response, enc["offset_mapping"]).tolist() == [False, True, True, True]


def test_answer_span_finds_the_last_answer_line_or_the_last_line():
    assert answer_span("1+1=2\n#### 2") == (6, 12)
    assert answer_span("#### 1\nx\n  #### 3\n") == (9, 17)
    assert answer_span("a\nbc\n\n") == (2, 4)  # no answer line: the last non-blank line
    assert answer_span(" \n ") is None
    assert answer_token_mask(" ", [(0, 1), (1, 1)]).tolist() == [False, True]  # blank response: the last token


def test_picks_break_ties_by_the_lower_index_and_refuse_nan():
    assert best_index([2.0, 5.0, 5.0]) == 1
    assert top_k([1.0, 3.0, 3.0, 2.0], 3) == [1, 2, 3]
    with pytest.raises(ValueError, match="NaN at samples"):
        best_index([1.0, math.nan])


def test_search_scores_a_partial_trace_by_its_steps():
    assert search_score([3.0, -1.0, 2.0], "min") == -1.0 and search_score([3.0, -1.0, 2.0], "last") == 2.0
    assert search_score([3.0, -1.0, 2.0], "mean") == pytest.approx(4 / 3) and search_score([], "min") == -math.inf
    with pytest.raises(ValueError, match="one of"):
        search_score([1.0], "sum")


def test_first_errors_and_step_spans():
    assert first_below([0.5, -0.2, -3.0], 0.0) == 1 and first_below([1.0], 0.0) == -1
    assert predict([[0.5, -0.2], [1.0, 2.0]], 0.0) == [1, -1]
    assert joined_spans(["a+b", "c\nd", ""]) == [(0, 3), (4, 7), (8, 8)]  # a step may hold a newline


def test_the_core_imports_no_model_code():
    code = "import sys, rairl.scores; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
