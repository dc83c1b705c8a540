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
from rairl.discriminator import Discriminator
from rairl.inference.scoring import RewardArgs, load_reward_model
from rairl.io import DataError
from rairl.report.heatmap import Trace, colour, read_scored, render_trace, saved_token_rewards, select
from rairl.report.outputs import Found, localize_tau
from rairl.report.page import value_cell
from rairl.report.plots import confusion_matrix
from rairl.reward_model import RewardModel
from rairl.scores import joined_spans
from rairl.tasks import TaskArgs, get_task

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


@pytest.fixture(scope="module")
def sample_rows(make_sample_rows):
    """`sample_rows()`: the samples above as `rairl sample` rows (answer: the response's last word)."""
    return lambda: make_sample_rows([(q, r, r.rsplit(" ", 1)[-1], c, e) for q, r, c, e in SAMPLES])


def write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_rows(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def models(saved_tiny):
    """A saved tiny discriminator (`disc/`) and policy, outside the run folder: the report must do without them."""
    return saved_tiny(256)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, models, sample_rows):
    """A demo-like run folder: `rairl rerank` and `rairl localize` outputs (with the likelihood baseline), a
    `rairl score` output, a handwritten `rairl eval` metrics.json and a demo results.json; no model."""
    root = tmp_path_factory.mktemp("run")
    write_jsonl(root / "samples.jsonl", sample_rows())
    disc, policy = str(models / "disc"), str(models / "policy")
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
    score = ["score", "--input", str(root / "samples.jsonl"), "--reward_model", disc]
    assert main([*score, "--output", str(root / "score" / "scores.jsonl")]) == 0
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
    labelled = read_rows(run_dir / "localize" / "predictions.jsonl")
    counts = [sum(r["label"] == -1 for r in labelled), sum(r["label"] != -1 for r in labelled)]
    for path in (run_dir / "rerank" / "scored.jsonl", run_dir / "score" / "scores.jsonl"):
        counts += [sum(r["correct"] for r in read_rows(path)), sum(not r["correct"] for r in read_rows(path))]
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
    ) == [("#053061", "1", "ab"), ("#67001f", "-1", "cd"), ("#68abd0", "0.5", "EOS")]
    assert out.count('<div class="step') == 3 and '<div class="step true pred">' in out
    assert out.count("badge true") == out.count("badge pred") == 1


def test_rerank_localize_and_score_save_the_reward_models_token_rewards(run_dir, models):
    """The saved tokens are the reward model's (EOS last) and their values its token rewards (the likelihood
    baseline's are not saved): to 4 significant digits beside rerank and localize outputs (a display copy), exactly
    in a `rairl score` output."""
    model = load_reward_model(RewardArgs(reward_model=str(models / "disc")), get_task(TaskArgs()))
    eos = model.tokenizer.eos_token
    scored, scores = read_rows(run_dir / "rerank" / "scored.jsonl"), read_rows(run_dir / "score" / "scores.jsonl")
    labelled = read_rows(run_dir / "localize" / "predictions.jsonl")
    steps = [r["steps"] for r in labelled]
    for rows, responses, step_spans, rtol in (
        (scored, [r["response"] for r in scored], None, 5e-4),
        (labelled, ["\n".join(s) for s in steps], [joined_spans(s) for s in steps], 5e-4),
        (scores, [r["response"] for r in scores], None, 0.0),
    ):
        got = model.score([r["prompt"] for r in rows], responses, step_spans=step_spans, aggregates=())
        assert len(rows) == len(got.tokens) > 0
        for row, response, values, spans in zip(rows, responses, got.tokens, got.token_spans):
            assert row["tokens"] == [response[a:b] if b > a else eos for a, b in spans] and row["tokens"][-1] == eos
            np.testing.assert_allclose(row["token_rewards"], values, rtol=rtol, atol=0)
            if rtol:
                assert all(float(f"{v:.4g}") == v for v in row["token_rewards"])  # rounded: files stay small


def test_saved_tokens_are_placed_in_the_response_left_to_right():
    # offsets that leave the space out, a piece that is not in the text (a zero-width one, saved as EOS), EOS last
    row = {"tokens": ["ab", "</s>", "c", "d", "</s>"], "token_rewards": [1, 2, 3, 4, 5]}
    values, spans = saved_token_rewards(row, "ab cd", "f.jsonl", 1)
    assert values == [1.0, 2.0, 3.0, 4.0, 5.0] and spans == [(0, 2), (2, 2), (3, 4), (4, 5), (5, 5)]
    assert saved_token_rewards({"step_scores": [0.5]}, "ab", "f.jsonl", 1) == (None, None)  # an older file
    with pytest.raises(DataError, match="f.jsonl, line 3, field 'tokens': expected 2 strings"):
        saved_token_rewards({"tokens": ["a"], "token_rewards": [1, 2]}, "ab", "f.jsonl", 3)


def test_scored_traces_take_the_first_step_below_tau(tmp_path, sample_rows):
    row = {**sample_rows()[1], "scores": {"reward/mean": -0.5}, "step_scores": [0.5, -0.2, -1.0], "picked_by": []}
    write_jsonl(tmp_path / "scored.jsonl", [row])
    (t,) = read_scored(tmp_path / "scored.jsonl", tau=0.0)
    assert (t.id, t.correct, t.true_error, t.predicted) == ("q1/1", False, 0, 1)
    assert t.step_spans == [(0, 5), (6, 12), (13, 20)] and t.scores == {"reward/mean": -0.5}
    assert read_scored(tmp_path / "scored.jsonl", tau=-0.5)[0].predicted == 2


TOKEN = re.compile(r'<span class="tok[^"]*" style="background:#\w+;[^"]*" title="r = ([-+.e\d]+)">([^<]*)</span>')


def shown_tokens(heatmap_html: str) -> list[tuple[str, str]]:
    """(text, value shown) of every coloured token of one heat map."""
    return [(html.unescape(text), value) for value, text in TOKEN.findall(heatmap_html)]


def expected_tokens(row: dict) -> list[tuple[str, str]]:
    """The saved tokens a heat map shows: those inside a step (every one but the newlines between steps, with
    character tokens), then EOS on a line of its own."""
    pieces = list(zip(row["tokens"], row["token_rewards"]))
    shown = [(tok, f"{value:.4g}") for tok, value in pieces[:-1] if tok != "\n"]
    return shown + [("EOS", f"{pieces[-1][1]:.4g}")]


def test_report_of_a_run_folder(run_dir, tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the report must not load a model")

    for loader in (RewardModel, Discriminator):
        monkeypatch.setattr(loader, "from_pretrained", no_model)
    assert not list(run_dir.rglob("discriminator"))  # no model to find in the run folder either
    out = tmp_path / "page" / "report.html"
    assert main(["report", str(run_dir), "--output", str(out)]) == 0
    text = out.read_text()
    # every heat map colours the tokens its file saved, with the values saved
    blocks = re.findall(r"<summary>(\S+) <small>(\S+): \d+ of \d+ traces</small></summary>(.*?)</details>", text, re.S)
    assert [(label, name) for label, name, _ in blocks] == [
        ("localize", "predictions.jsonl"),
        ("rerank", "scored.jsonl"),
        ("score/scores.jsonl", "scores.jsonl"),
    ]
    for label, name, body in blocks:
        rows = read_rows(run_dir / label if label.endswith(".jsonl") else run_dir / label / name)
        by_id = {str(r["id"]) + (f"/{r['sample']}" if "sample" in r else ""): r for r in rows}
        heatmaps = body.split('<div class="heatmap ')[1:]
        assert heatmaps
        for one in heatmaps:
            trace_id = html.unescape(re.search(r'<span class="trace-id">([^<]*)</span>', one)[1])
            assert shown_tokens(one) == expected_tokens(by_id[trace_id]), (label, trace_id)
    assert "Token rewards as the commands saved them" in text and "No token rewards saved" not in text
    assert "tok step-colour" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)  # self-contained
    assert "<script" not in text and "&lt;script&gt;" in text  # data is escaped
    assert "<b>&" not in text and "2+2=5 <b>&</b>" in html.unescape(re.sub(r"<[^>]+>", "", text))
    assert text.count('class="heatmap ') == expected_heatmaps(run_dir, 3)
    ids = re.findall(r'id="(heatmap-\d+)"', text)
    assert len(ids) == len(set(ids)) == text.count('class="heatmap ')
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
    assert text.count('class="heatmap ') == expected_heatmaps(run_dir, 1) == 6  # 3 files, 1 correct + 1 wrong
    assert (copy / "report_images" / "passk-rerank.png").is_file()


def test_files_without_token_rewards_colour_steps_by_their_scores(tmp_path, sample_rows):
    """Runs written before commands saved token rewards."""
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
    assert "No token rewards saved in this file" in text and 'class="tok"' not in text
    assert text.count('class="heatmap ') == 4 and text.count("tok step-colour") == 4 * 3


def test_user_errors(run_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 1
    assert "found no rairl outputs" in capsys.readouterr().err
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


def test_the_beyond_the_likelihood_section_shows_each_reward_in_words_and_figures(tmp_path):
    from rairl.report.outputs import Found
    from rairl.report.sections import beyond_section

    gain = {"mean": 0.0, "ci95": [-0.01, 0.01], "n": 40}
    rerank = {"residual": {"reward/min": {"summary": "same pick as the likelihood on 100% of 40", "auc_gain": gain}}}
    localize = {"residual": {"summary": "same predicted first error as the likelihood on 90% of 40", "auc_gain": gain}}
    found = [Found("rerank", tmp_path / "a" / "metrics.json", rerank, "a"),
             Found("localize", tmp_path / "b" / "metrics.json", localize, "b"),
             Found("eval", tmp_path / "c" / "metrics.json", {"splits": {}}, "c")]  # fmt: skip
    text = beyond_section(found)
    assert "reward/min" in text and "on 100% of 40" in text and "on 90% of 40" in text
    assert text.count("<tr>") == 3 and "0.000" in text  # a header and one row per reward
    assert beyond_section(found[2:]) == ""


@pytest.mark.parametrize(
    "name, data, field, problem",
    [
        ("metrics.json", {"splits": {"test": 5}}, "splits.test", "expected an object, got int"),
        (
            "metrics.json",
            {"splits": {"test": {"pass@x": {}}}},
            "splits.test.pass@x",
            "expected pass@K with an integer K >= 1",
        ),
        ("metrics.json", {"results": {"beam/N=4": {}}}, "results.beam/N=4", "expected a key method/scorer/N=n"),
        ("metrics.json", {"pass@k": [], "select": {}}, "pass@k", "expected an object, got list"),
        ("metrics.json", {"reward": {"acc_error": {}, "threshold": "a"}}, "reward.threshold", "expected a number"),
        ("metrics.json", {"x": {"mean": "0.5", "ci95": None}}, "x.mean", "expected a number or null, got '0.5'"),
        ("metrics.json", {"x": {"mean": 0.5, "ci95": [0.1]}}, "x.ci95", r"expected \[low, high\]"),
        ("results.json", {"claims": 5}, "claims", "expected a list or null, got int"),
        # shapes that reached a plot (the fuzzer's finds): a pass@k that is no summary, pass@0 on a log axis
        ("metrics.json", {"splits": {"test": {"pass@1": "x"}}}, "splits.test.pass@1", "expected a summary object"),
        (
            "metrics.json",
            {"splits": {"test": {"pass@0": {}}}},
            "splits.test.pass@0",
            "expected pass@K with an integer K >= 1",
        ),
        (
            "metrics.json",
            {"results": {"beam/r/N=4": {"accuracy": {}, "tokens_per_question": 0}}},
            "results.beam/r/N=4",
            r"expected tokens_per_question \(a number > 0",
        ),
    ],
)
def test_a_metrics_file_of_another_shape_is_one_line_naming_the_file_and_field(
    tmp_path, capsys, name, data, field, problem
):
    path = tmp_path / "run" / name
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    assert main(["report", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.match(rf"error: {re.escape(str(path))}, field '{re.escape(field)}': {problem}", err)


def test_a_deeply_nested_metrics_file_is_one_line(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text('{"a": ' + "[" * 10_000 + "]" * 10_000 + "}")
    assert main(["report", str(tmp_path)]) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"error: {tmp_path / 'metrics.json'}, line 1: JSON nested deeper than 100 levels"
    )


def test_a_summary_without_its_interval_is_drawn_without_error_bars(tmp_path):
    """A hand-written metrics file may give a mean and no ci95: the pass@k plot draws the point (the fuzzer found it
    raised KeyError)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(
        json.dumps({"splits": {"test": {"pass@1": {"mean": 0.5}, "greedy": {"mean": 0.4}}}})
    )
    assert main(["report", str(run)]) == 0
    assert "pass@k" in (run / "report.html").read_text()


def test_the_report_renders_with_torch_made_unimportable(run_dir, tmp_path):
    """The report reads saved files only (`rairl.scores`, not the model code): a page renders in a process where
    importing torch fails."""
    block = (  # torch as if not installed: `import torch` fails and find_spec("torch") is None
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "from rairl.cli import main\n"
        f"raise SystemExit(main(['report', {str(run_dir)!r}, '--output', {str(tmp_path / 'page.html')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (tmp_path / "page.html").read_text()
    assert "predictions.jsonl" in text and "scored.jsonl" in text and "data:image/png" in text


def test_the_report_says_where_each_result_was_measured(tmp_path):
    from rairl.environment import environment

    run = tmp_path / "run"
    (run / "search").mkdir(parents=True)
    env = environment(threads=3)
    payload = {"split": "test", "n_questions": 1, "results": {}, "environment": env}
    (run / "search" / "metrics.json").write_text(json.dumps(payload))
    assert main(["report", str(run)]) == 0
    text = (run / "report.html").read_text()
    assert "<h2>Where it was measured</h2>" in text
    assert f"<td>{env['cpu']}</td>" in text and f"transformers {env['versions']['transformers']}" in text
    assert "<td>3</td>" in text  # the threads the work ran at
