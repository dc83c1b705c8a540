import json
from pathlib import Path

import pytest

from rairl.evaluation.processbench import (
    LabelledTrace,
    f1,
    processbench_metrics,
    read_processbench,
    write_processbench,
)
from rairl.io import DataError


def test_metrics_hand_computed():
    # 4 erroneous traces (labels 2, 0, 1, 3) and 3 correct ones (-1)
    labels = [2, 0, 1, 3, -1, -1, -1]
    predicted = [2, 0, 2, -1, -1, 1, -1]
    m = processbench_metrics(predicted, labels)
    assert m["acc_error"]["mean"] == pytest.approx(2 / 4) and m["acc_error"]["n"] == 4
    assert m["acc_correct"]["mean"] == pytest.approx(2 / 3) and m["acc_correct"]["n"] == 3
    # F1 = 2 * 1/2 * 2/3 / (1/2 + 2/3) = 4/7
    assert m["f1"]["mean"] == pytest.approx(4 / 7) and m["f1"]["n"] == 7
    for s in m.values():
        lo, hi = s["ci95"]
        assert 0.0 <= lo <= s["mean"] <= hi <= 1.0
    assert processbench_metrics(predicted, labels) == m  # seeded


def test_metrics_perfect_and_degenerate():
    m = processbench_metrics([1, -1], [1, -1])
    assert [m[k]["mean"] for k in ("acc_error", "acc_correct", "f1")] == [1.0, 1.0, 1.0]
    assert m["f1"]["ci95"] == [1.0, 1.0]
    # flagging nothing: every correct trace right, every erroneous one wrong -> F1 = 0
    assert processbench_metrics([-1, -1, -1], [0, 2, -1])["f1"]["mean"] == 0.0
    only_correct = processbench_metrics([-1, 0], [-1, -1])
    assert only_correct["acc_error"] == {"mean": None, "ci95": [None, None], "n": 0}
    assert only_correct["acc_correct"]["mean"] == 0.5
    assert only_correct["f1"]["mean"] is None
    assert f1(0.0, 0.0) == 0.0 and f1(1.0, 0.5) == pytest.approx(2 / 3)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="one prediction per"):
        processbench_metrics([0, 1], [0])
    with pytest.raises(ValueError, match="-1"):
        processbench_metrics([-2], [0])
    with pytest.raises(ValueError, match="step indices"):
        processbench_metrics([0.5], [0])


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_read_write_round_trip(tmp_path):
    traces = [
        LabelledTrace("a", "1+1?", ("1+1=2", "#### 2"), -1, {"generator": "me"}),
        LabelledTrace("b", "2*3?", ("2*3=5", "#### 5"), 0),
    ]
    path = tmp_path / "pb.jsonl"
    write_processbench(path, traces)
    back = read_processbench(path)
    assert back == traces and back[0].meta == {"generator": "me"}


def test_read_defaults_id_from_line(tmp_path):
    path = _write(tmp_path / "mine.jsonl", [{"problem": "p", "steps": ["s"], "label": 0}])
    assert read_processbench(path)[0].id == "mine-1"


@pytest.mark.parametrize(
    "row, field, problem",
    [
        ({"id": "x", "steps": ["s"], "label": 0}, "problem", "missing"),
        ({"id": "x", "problem": "p", "steps": "s", "label": 0}, "steps", "expected list"),
        ({"id": "x", "problem": "p", "steps": [], "label": -1}, "steps", "empty list"),
        ({"id": "x", "problem": "p", "steps": ["s", 3], "label": -1}, "steps", "step 1 is int"),
        ({"id": "x", "problem": "p", "steps": ["s"], "label": 1}, "label", "0..0"),
        ({"id": "x", "problem": "p", "steps": ["s"], "label": -2}, "label", "got -2"),
        ({"id": "x", "problem": "p", "steps": ["s"], "label": "0"}, "label", "expected int"),
        ({"id": "x", "problem": "p", "steps": ["s"], "label": True}, "label", "got True"),
    ],
)
def test_read_rejects_malformed_rows(tmp_path, row, field, problem):
    good = {"id": "ok", "problem": "p", "steps": ["s"], "label": -1}
    path = _write(tmp_path / "bad.jsonl", [good, row])
    with pytest.raises(DataError, match=problem) as err:
        read_processbench(path)
    assert err.value.line == 2 and err.value.field == field and "bad.jsonl" in str(err.value)


def test_read_rejects_bad_json_duplicates_and_empty(tmp_path):
    with pytest.raises(DataError, match="line 1.*not valid JSON"):
        read_processbench(_write(tmp_path / "a.jsonl", ["{not json"]))
    row = {"id": "x", "problem": "p", "steps": ["s"], "label": -1}
    with pytest.raises(DataError, match="repeats line 1"):
        read_processbench(_write(tmp_path / "b.jsonl", [row, row]))
    with pytest.raises(DataError, match="no traces"):
        read_processbench(_write(tmp_path / "c.jsonl", [""]))
    with pytest.raises(DataError, match="file not found"):
        read_processbench(tmp_path / "missing.jsonl")


def test_read_real_processbench_lines(tmp_path, shared_data):
    source = shared_data / "processbench" / "gsm8k.jsonl"
    if not source.is_file():
        pytest.skip(f"ProcessBench data not staged at {source}")
    lines = source.read_text(encoding="utf-8").splitlines()[:5]
    traces = read_processbench(_write(tmp_path / "gsm8k.jsonl", lines))
    assert [t.id for t in traces] == [f"gsm8k-{i}" for i in range(5)]
    for t, line in zip(traces, lines):
        row = json.loads(line)
        assert t.label == row["label"] and list(t.steps) == row["steps"]
        assert -1 <= t.label < len(t.steps)
        assert set(t.meta) == {"generator", "final_answer_correct"}


def test_read_whole_gsm8k_split(shared_data):
    source = shared_data / "processbench" / "gsm8k.jsonl"
    if not source.is_file():
        pytest.skip(f"ProcessBench data not staged at {source}")
    traces = read_processbench(source)
    # counts from the data README: 400 rows, 207 erroneous / 193 error-free
    assert len(traces) == 400
    assert sum(t.label != -1 for t in traces) == 207
