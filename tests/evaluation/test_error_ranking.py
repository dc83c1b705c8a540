"""Hit@k and MAP of first-error localisation, on hand-made rankings."""

import pytest

from rairl.evaluation.error_ranking import error_rank, ranking_metrics


def test_rank_lowest_first_ties_to_the_earlier_step():
    assert error_rank([0.9, -2.0, 0.1], 1) == 1  # the lowest step
    assert error_rank([0.9, -2.0, 0.1], 2) == 2
    assert error_rank([0.9, -2.0, 0.1], 0) == 3
    assert error_rank([0.5, 0.5, 0.5], 0) == 1  # all tied: the earlier step ranks first
    assert error_rank([0.5, 0.5, 0.5], 2) == 3
    assert error_rank([0.5, -1.0, 0.5], 2) == 3  # one lower step, one tied earlier step
    with pytest.raises(ValueError, match="not a step index"):
        error_rank([0.1, 0.2], 2)


def test_hit_at_k_and_map_by_hand():
    scores = [
        [0.9, -2.0, 0.1],  # label 1: rank 1
        [0.9, -2.0, 0.1],  # label 2: rank 2
        [-1.0, 0.0, 1.0, 2.0],  # label 3: rank 4
        [0.3, 0.2],  # label -1: correct trace, left out
    ]
    labels = [1, 2, 3, -1]
    m = ranking_metrics(scores, labels, ks=(1, 3))
    assert m["hit@1"]["mean"] == pytest.approx(1 / 3) and m["hit@1"]["n"] == 3
    assert m["hit@3"]["mean"] == pytest.approx(2 / 3)
    assert m["map"]["mean"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    lo, hi = m["map"]["ci95"]
    assert 0.25 <= lo <= m["map"]["mean"] <= hi <= 1.0


def test_no_erroneous_trace_gives_no_figure():
    m = ranking_metrics([[0.1], [0.2]], [-1, -1])
    assert m["hit@1"] == {"mean": None, "ci95": [None, None], "n": 0}
    assert m["map"]["mean"] is None
    with pytest.raises(ValueError, match="one list of step scores per label"):
        ranking_metrics([[0.1]], [0, -1])
