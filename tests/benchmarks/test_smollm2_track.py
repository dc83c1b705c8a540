"""The SmolLM2 track's `--pool` mode: it reads the finished steps and starts none (the track itself needs the
SmolLM2 weights and hours; its smoke run is `benchmarks/smollm2_track.py --smoke`)."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_pool_reads_finished_steps_and_refuses_to_start_one(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import smollm2_track as track

    started = []
    monkeypatch.setattr(track.subprocess, "call", lambda argv, **k: started.append(argv) or 0)
    monkeypatch.setitem(track.POOL, "only", True)
    done = tmp_path / "done.json"
    done.write_text("{}")
    track.rairl(done, ["eval"], tmp_path / "log")  # finished: read, nothing started
    with pytest.raises(track.Unfinished, match="missing.json"):
        track.rairl(tmp_path / "missing.json", ["eval"], tmp_path / "log")
    assert started == [] and not (tmp_path / "log").exists()
    monkeypatch.setitem(track.POOL, "only", False)  # the same missing step outside --pool is started
    track.rairl(tmp_path / "missing.json", ["eval"], tmp_path / "log")
    assert [argv[-1] for argv in started] == ["eval"]
