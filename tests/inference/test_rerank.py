"""Best-of-N reranking (`rairl rerank`, rairl.inference.rerank) on a handmade samples file and a tiny saved reward."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rairl.cli import main
from rairl.evaluation.selection import group_by_question, normalise_answer, picked_by, rerank_metrics
from rairl.inference.rerank import default_ks

# 3 questions x 3 samples: (id, response, answer, correct)
SAMPLES = [
    ("q1", "3+4=7\n#### 7", "7", True),
    ("q1", "3+4=8\n#### 8", "8", False),
    ("q1", "3+5=8\n#### 8", "8", False),
    ("q2", "2*2=4\n#### 4", "4", True),
    ("q2", "2*2=4\n#### 4.0", "4.0", True),
    ("q2", "2+3=5\n#### 5", "5", False),
    ("q3", "no answer", None, False),
    ("q3", "1\n#### 1", "1", False),
    ("q3", "2\n#### 2", "2", False),
]


@pytest.fixture
def rows(make_sample_rows):
    """`rows()`: the samples above as `rairl sample` rows (fresh copies)."""
    return lambda: make_sample_rows(
        [(qid, response, answer, correct, None) for qid, response, answer, correct in SAMPLES]
    )


def write_rows(path, data) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in data))


@pytest.fixture(scope="module")
def saved(saved_tiny):
    """A tiny saved discriminator and the policy it starts from (hidden 32, 1 layer)."""
    return saved_tiny(256)


def test_metrics_on_hand_made_scores(rows):
    data = rows()
    groups = group_by_question(data)
    correct = np.array([r["correct"] for r in data])
    answers = [normalise_answer(r["answer"]) for r in data]
    scores = {"s": np.array([3.0, 1, 2, 0, 1, 2, 0, 0, 0]), "tie": np.array([1.0, 1, 0, 0, 0, 0, 0, 0, 0])}
    m = rerank_metrics(groups, correct, answers, scores, ks=[1, 2])
    assert m["pass@k"]["pass@1"]["mean"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    # pass@2: q1 1 - C(2,2)/C(3,2) = 2/3, q2 1, q3 0
    assert m["pass@k"]["pass@2"]["mean"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    sel = {name: s["mean"] for name, s in m["select"].items()}
    assert sel["oracle@N"] == pytest.approx(2 / 3)
    assert sel["random"] == pytest.approx(1 / 3)
    assert sel["majority"] == pytest.approx(1 / 3)  # q1 "8" wrong, q2 "4" (= "4.0") right, q3 tie of wrong answers
    assert sel["s"] == pytest.approx(1 / 3)  # q1 picks sample 0 (right), q2 sample 2 (wrong), q3 wrong
    assert sel["tie"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)  # ties count as a uniform pick among the tied
    assert m["gain"]["random"]["mean"] == pytest.approx(0.0)
    assert m["gain"]["oracle@N"]["mean"] == pytest.approx(2 / 3 - 1 / 3)
    assert picked_by(groups, scores, len(data))[0] == ["s", "tie"]  # first index among ties


def test_helpers():
    assert normalise_answer("$4.0") == normalise_answer("4") and normalise_answer(" x ") == "x"
    assert normalise_answer(None) is None
    assert default_ks(8) == [1, 2, 4, 8] and default_ks(6) == [1, 2, 4, 6] and default_ks(1) == [1]


def test_rerank_cli_on_a_tiny_saved_discriminator(saved, tmp_path, capsys, rows):
    src = tmp_path / "samples.jsonl"
    write_rows(src, rows())
    out = tmp_path / "rerank"
    code = main(
        [
            "rerank",
            "--samples",
            str(src),
            "--reward_model",
            str(saved / "disc"),
            "--policy",
            str(saved / "policy"),
            "--output_dir",
            str(out),
            "--aggregates",
            "mean,min,answer_span",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_questions"] == 3 and metrics["samples_per_question"] == {"min": 3, "max": 3}
    assert sorted(metrics["pass@k"]) == ["pass@1", "pass@2", "pass@3"]
    methods = [
        "oracle@N",
        "random",
        "majority",
        "reward/mean",
        "reward/min",
        "reward/answer_span",
        "likelihood/mean",
        "likelihood/min",
        "learned/mean",
        "learned/min",
        "learned/answer_span",
    ]
    assert list(metrics["select"]) == methods and list(metrics["gain"]) == methods
    assert metrics["select"]["majority"]["mean"] == pytest.approx(1 / 3)
    for name in methods:
        s, g = metrics["select"][name], metrics["gain"][name]
        assert s["n"] == 3 and s["ci95"][0] <= s["mean"] <= s["ci95"][1]
        assert g["mean"] == pytest.approx(s["mean"] - metrics["pass@k"]["pass@1"]["mean"])
    scored = [json.loads(line) for line in (out / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == 9 and scored[0]["response"] == SAMPLES[0][1]
    assert sorted(scored[0]["scores"]) == sorted(methods[3:])
    for qid in ("q1", "q2", "q3"):  # every score-based method picks exactly one sample per question
        picks = [name for r in scored if r["id"] == qid for name in r["picked_by"]]
        assert sorted(picks) == sorted(methods[3:])
    # the learned part is f − ℓ: with the discriminator's ℓ_t equal to the policy's, the mean aggregation shows it
    for r in scored:
        s = r["scores"]
        assert s["learned/mean"] == pytest.approx(s["reward/mean"] - s["likelihood/mean"], abs=1e-4)
    # what the reward adds beyond the likelihood, per reward aggregation against the same likelihood aggregation
    assert {k: v["versus"] for k, v in metrics["agreement"].items()} == {
        "reward/mean": "likelihood/mean",
        "reward/min": "likelihood/min",
        "reward/answer_span": "likelihood/mean",
    }
    for name, a in metrics["agreement"].items():
        assert a["same_pick"]["n"] == 3 and 0 <= a["same_pick"]["mean"] <= 1
        r = metrics["residual"][name]
        assert "cross-fitted" in r["fit"] and set(r["auc"]) == {"likelihood", "reward", "learned"}
        assert "same pick as the likelihood" in r["summary"]
    table = capsys.readouterr().out
    assert "reward/mean" in table and "likelihood/min" in table and "gain vs pass@1" in table


def test_rerank_cli_names_file_line_and_field(saved, tmp_path, capsys, rows):
    bad = rows()
    del bad[1]["correct"]
    src = tmp_path / "bad.jsonl"
    write_rows(src, bad)
    args = ["rerank", "--samples", str(src), "--reward_model", str(saved / "disc"), "--output_dir", str(tmp_path)]
    assert main(args) == 1
    assert f"{src}, line 2, field 'correct'" in capsys.readouterr().err
    dup = rows()
    dup[2]["sample"] = 0
    write_rows(src, dup)
    assert main(args) == 1
    assert "line 3, field 'sample': (id, sample) = ('q1', 0) repeats line 1" in capsys.readouterr().err
    write_rows(src, rows())
    assert main(args + ["--k", "1,5"]) == 1
    assert "every k must lie in 1..3" in capsys.readouterr().err
