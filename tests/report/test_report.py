"""`rairl report RUN_DIR` (rairl.report): heat maps, figures and tables of a run folder, and its pure helpers."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rairl.cli import main
from rairl.report.heatmap import Trace, colour, read_scored, render_trace, select
from rairl.report.html import Found, localize_tau
from rairl.report.page import value_cell
from rairl.report.plots import confusion_matrix

# 2 questions x 3 samples: (id, response, correct, first_error); one response holds HTML to be escaped
SAMPLES = [
    ("q1", "3+4=7\n7*2=14\n#### 14", True, -1),
    ("q1", "3+4=8\n8*2=16\n#### 16", False, 0),
    ("q1", "3+4=7\n7*2=15\n#### 15", False, 1),
    ("q2", "2*2=4\n4-1=3\n#### 3", True, -1),
    ("q2", "2*2=4\n4-1=3\n#### 3.0", True, -1),
    ("q2", "2+2=5 <b>&</b>\n5-1=4\n#### 4", False, 0),
]
SUMMARY = {"mean": 0.5, "ci95": [0.4, 0.6], "n": 10}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def sample_rows() -> list[dict]:
    rows, counts = [], {}
    for qid, response, correct, first_error in SAMPLES:
        j = counts[qid] = counts.get(qid, -1) + 1
        rows.append(
            {
                "id": qid,
                "sample": j,
                "question": f"question {qid}",
                "prompt": f"Question: question {qid}\nAnswer:\n",
                "response": response,
                "answer": response.rsplit(" ", 1)[-1],
                "correct": correct,
                "first_error": first_error,
            }
        )
    return rows


def write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, saved_tiny):
    """A demo-like run folder: a saved tiny discriminator, `rairl rerank` and `rairl localize` outputs (with the
    likelihood baseline), a handwritten `rairl eval` metrics.json and a demo results.json."""
    root = tmp_path_factory.mktemp("run")
    shutil.copytree(saved_tiny(256) / "disc", root / "airl" / "discriminator")
    shutil.copytree(saved_tiny(256) / "policy", root / "policy")
    write_jsonl(root / "samples.jsonl", sample_rows())
    disc, policy = str(root / "airl" / "discriminator"), str(root / "policy")
    assert (
        main(
            [
                "rerank",
                "--samples",
                str(root / "samples.jsonl"),
                "--reward_model",
                disc,
                "--policy",
                policy,
                "--output_dir",
                str(root / "rerank"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "localize",
                "--reward_model",
                disc,
                "--policy",
                policy,
                "--output_dir",
                str(root / "localize"),
                "--n_eval",
                "4",
                "--n_train",
                "20",
            ]
        )
        == 0
    )
    (root / "eval").mkdir()
    splits = {"test": {"greedy": SUMMARY, "pass@1": SUMMARY, "pass@4": SUMMARY}}
    (root / "eval" / "metrics.json").write_text(json.dumps({"model": "tiny", "task": "arith", "splits": splits}))
    (root / "results.json").write_text(
        json.dumps(
            {
                "seeds": [0, 1],
                "wall_time_s": 12.5,
                "training": {
                    "sft": {"id": {"pass@1": SUMMARY}, "ood": {"pass@1": SUMMARY}},
                    "airl": {"id": {"pass@1": SUMMARY}, "ood": {"pass@1": SUMMARY}},
                },
                "rerank": {"reward/mean": SUMMARY},
                "localize": {"f1": SUMMARY},
                "transfer": {},
                "claims": [{"claim": "AIRL beats SFT <script>alert(1)</script>", "value": SUMMARY, "holds": True}],
            }
        )
    )
    return root


def expected_heatmaps(run_dir, n: int) -> int:
    scored = [json.loads(x) for x in (run_dir / "rerank" / "scored.jsonl").read_text().splitlines()]
    labelled = [json.loads(x) for x in (run_dir / "localize" / "predictions.jsonl").read_text().splitlines()]
    counts = [
        sum(r["correct"] for r in scored),
        sum(not r["correct"] for r in scored),
        sum(r["label"] == -1 for r in labelled),
        sum(r["label"] != -1 for r in labelled),
    ]
    return sum(min(n, c) for c in counts)


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    labels, counts = confusion_matrix([-1, -1, 0, 2, 2], [-1, 0, 0, 1, -1])
    assert labels == ["none", "0", "1", "2"]
    expected = np.zeros((4, 4), dtype=int)
    expected[0, 0] = expected[0, 1] = expected[1, 1] = expected[3, 2] = expected[3, 0] = 1
    np.testing.assert_array_equal(counts, expected)
    labels, counts = confusion_matrix([12], [9])  # steps past 8 share the last bin
    assert labels[-1] == "≥8" and counts[-1, -1] == 1 and counts.sum() == 1


def test_colours_diverge_around_zero_and_clip():
    # RdBu's centre and ends (matplotlib's colour table): near-white at 0, dark red at -v, dark blue at +v
    assert colour(0.0, 1.0) == ("#f6f7f7", "#000")
    assert colour(-1.0, 1.0) == ("#67001f", "#fff") and colour(1.0, 1.0) == ("#053061", "#fff")
    assert colour(-2.0, 2.0) == colour(-1.0, 1.0)  # the scale is relative to v
    assert colour(-7.0, 1.0) == colour(-1.0, 1.0) and colour(9.0, 1.0) == colour(1.0, 1.0)


def test_selection_is_deterministic_and_prefers_wrong_traces_with_a_known_error():
    def trace(i: int, correct: bool, true_error: int | None) -> Trace:
        return Trace(str(i), "q", "p", "a", [(0, 1)], [0.0], correct, true_error, -1)

    traces = [trace(0, False, None), trace(1, True, -1), trace(2, False, 1), trace(3, True, -1), trace(4, False, 0)]
    assert [t.id for t in select(traces, 2)] == ["1", "3", "2", "4"]
    assert [t.id for t in select(traces, 1)] == ["1", "2"]
    assert select(traces, 0) == []


def test_rerank_traces_take_tau_from_the_nearest_localize_run(tmp_path):
    def localize(folder: str, tau: float) -> Found:
        return Found("localize", tmp_path / folder / "metrics.json", {"reward": {"threshold": tau}}, folder)

    found = [localize("seed0/localize_a", -1.0), localize("seed1/localize_a", -2.0)]
    assert localize_tau(found, tmp_path / "seed1" / "rerank") == -2.0
    assert localize_tau(found, tmp_path / "seed0" / "rerank") == -1.0
    assert localize_tau(found, tmp_path / "other") == -1.0  # a tie: the first
    assert localize_tau([], tmp_path) == 0.0


def test_table_cells():
    assert value_cell(True) == "<td class='yes'>yes</td>" and value_cell(None) == "<td>–</td>"
    assert value_cell({"airl": {"mean": 0.5, "ci95": [0.25, 0.75], "n": 4}, "diff": 0.1}) == (
        "<td>airl: 0.500 [0.250, 0.750] (n=4); diff: 0.1</td>"
    )
    assert value_cell("<i>") == "<td>&lt;i&gt;</td>" and value_cell(0.123456) == "<td class='num'>0.1235</td>"


def test_a_token_across_a_step_boundary_colours_its_part_in_each_step():
    # "ab\ncd": token 0 = "ab\n" (r = 1), token 1 = "cd" (r = -1), then EOS (r = 0.5); step 1 is the true and
    # the predicted first error
    t = Trace(
        "t<1>",
        "q",
        "p",
        "ab\ncd",
        [(0, 2), (3, 5)],
        [1.0, -1.0],
        False,
        1,
        1,
        token_values=[1.0, -1.0, 0.5],
        token_spans=[(0, 3), (3, 5), (5, 5)],
    )
    out = render_trace(t, 7, vmax=1.0)
    assert out.startswith('<div class="heatmap wrong" id="heatmap-7">') and "t&lt;1&gt;" in out
    assert re.findall(
        r'<span class="tok[^"]*" style="background:(#\w+);[^"]*" title="r = ([-.\d]+)">([^<]*)</span>', out
    ) == [("#053061", "1.0000", "ab"), ("#67001f", "-1.0000", "cd"), ("#68abd0", "0.5000", "EOS")]
    assert out.count('<div class="step') == 3 and '<div class="step true pred">' in out
    assert out.count("badge true") == out.count("badge pred") == 1


def test_scored_traces_take_the_first_step_below_tau(tmp_path):
    row = {**sample_rows()[1], "scores": {"reward/mean": -0.5}, "step_scores": [0.5, -0.2, -1.0], "picked_by": []}
    write_jsonl(tmp_path / "scored.jsonl", [row])
    (t,) = read_scored(tmp_path / "scored.jsonl", tau=0.0)
    assert (t.id, t.correct, t.true_error, t.predicted) == ("q1/1", False, 0, 1)
    assert t.step_spans == [(0, 5), (6, 12), (13, 20)] and t.scores == {"reward/mean": -0.5}
    assert read_scored(tmp_path / "scored.jsonl", tau=-0.5)[0].predicted == 2


def test_report_of_a_run_folder(run_dir, tmp_path):
    out = tmp_path / "page" / "report.html"
    assert main(["report", str(run_dir), "--output", str(out)]) == 0
    text = out.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)  # self-contained
    assert "<script" not in text and "&lt;script&gt;" in text  # data is escaped
    assert "<b>&" not in text and "2+2=5 <b>&</b>" in html.unescape(re.sub(r"<[^>]+>", "", text))
    assert text.count('class="heatmap ') == expected_heatmaps(run_dir, 3)
    ids = re.findall(r'id="(heatmap-\d+)"', text)
    assert len(ids) == len(set(ids)) == text.count('class="heatmap ')
    assert 'class="tok"' in text and "Token rewards r_t from the reward model" in text
    for title in (
        "Claims",
        "Token reward heat maps",
        "Reward distributions",
        "pass@k with and without reranking",
        "First-error localisation",
        "Metric tables",
    ):
        assert f"<h2>{title}</h2>" in text
    assert "badge true" in text and "badge pred" in text
    assert not list(out.parent.glob("*.png"))  # the images live in their own folder
    pngs = sorted((out.parent / "report_images").glob("*.png"))
    names = {f"report_images/{p.name}" for p in pngs}
    assert names == {
        "report_images/reward-rerank.png",
        "report_images/reward-localize.png",
        "report_images/passk-rerank.png",
        "report_images/confusion-localize.png",
    }
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)
    assert text.count('src="data:image/png;base64,') == len(pngs)
    for name in names:
        assert name in text
    assert "eval/metrics.json" in text and "training/sft/id/pass@1" in text  # every metrics file is tabled


def test_max_traces_and_default_output(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    done = subprocess.run(
        [sys.executable, "-m", "rairl.cli", "report", str(copy), "--max_traces", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    text = (copy / "report.html").read_text()
    assert text.count('class="heatmap ') == expected_heatmaps(run_dir, 1) == 4
    assert (copy / "report_images" / "passk-rerank.png").is_file()


def test_without_a_reward_model_steps_are_coloured_by_their_scores(tmp_path):
    run = tmp_path / "run"
    rows = [
        {**r, "scores": {"reward/mean": float(i)}, "step_scores": [1.0, -1.0, 0.5], "picked_by": []}
        for i, r in enumerate(sample_rows())
    ]
    write_jsonl(run / "rr" / "scored.jsonl", rows)
    metrics = {
        "n_questions": 2,
        "pass@k": {"pass@1": SUMMARY, "pass@3": SUMMARY},
        "select": {"random": SUMMARY, "reward/mean": SUMMARY},
        "gain": {},
        "config": {"reward_model": str(tmp_path / "gone"), "step_reduce": "last"},
    }
    (run / "rr" / "metrics.json").write_text(json.dumps(metrics))
    assert main(["report", str(run), "--max_traces", "2"]) == 0
    text = (run / "report.html").read_text()
    assert "No reward model could be loaded" in text and 'class="tok"' not in text
    assert text.count('class="heatmap ') == 4 and text.count("tok step-colour") == 4 * 3


def test_user_errors(run_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 1
    assert "found no rairl outputs" in capsys.readouterr().err
    assert (
        main(
            ["report", str(run_dir), "--output", str(tmp_path / "r.html"), "--reward_model", str(tmp_path / "nowhere")]
        )
        == 1
    )
    assert "--reward_model" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    assert main(["report", str(tmp_path / "bad")]) == 1
    assert f"{tmp_path / 'bad' / 'metrics.json'}, line 1: not valid JSON" in capsys.readouterr().err


def test_page_renders_in_headless_chromium(run_dir, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium not installed")
    from PIL import Image

    out, shot = tmp_path / "report.html", tmp_path / "shot.png"
    assert main(["report", str(run_dir), "--output", str(out), "--max_traces", "1"]) == 0
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            out.resolve().as_uri(),
        ],
        timeout=120,
        capture_output=True,
        check=False,
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    with Image.open(shot) as image:
        low, high = image.convert("L").getextrema()
        assert image.size == (1200, 2000) and high - low > 100  # not blank: dark text on a light page


def test_a_search_run_is_plotted_as_accuracy_against_tokens(tmp_path):
    run = tmp_path / "run"
    results = {
        f"{method}/{scorer}/N={n}": {
            "accuracy": SUMMARY,
            "tokens_per_question": 10.0 * n,
            "scorer_calls_per_question": n,
        }
        for method in ("best_of_n", "beam")
        for scorer in ("reward", "likelihood")
        for n in (4, 8)
    }
    (run / "search").mkdir(parents=True)
    (run / "search" / "metrics.json").write_text(json.dumps({"split": "test", "n_questions": 10, "results": results}))
    assert main(["report", str(run)]) == 0
    text = (run / "report.html").read_text()
    assert "<h2>Reward-guided search</h2>" in text and "(search)" in text
    assert (run / "report_images" / "search.png").read_bytes().startswith(b"\x89PNG")
