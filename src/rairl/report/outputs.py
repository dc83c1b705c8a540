"""The outputs a run folder holds, found by shape at any depth, each file once (`KINDS`, first match wins):

    rerank     metrics.json with "pass@k" and "select" (+ scored.jsonl)                 `rairl rerank`
    localize   metrics.json with "reward": {"acc_error", ...} (+ predictions.jsonl)      `rairl localize`
    eval       metrics.json with "splits"                                                 `rairl eval`
    search     metrics.json with "results" keyed method/scorer/N=n                        `rairl search`
    demo       results.json with "training" or "claims"                                   `rairl demo`
    metrics    any other metrics.json (its summaries are tabled)
    score      a JSONL whose first row has response, tokens, token_rewards, step_scores   `rairl score`
               and trace_scores

and the traces of the three that save them (`Found.traces`), read by `rairl.report.heatmap`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rairl.io import DataError, read_json, read_jsonl
from rairl.report import heatmap

DEFAULT_TAU = 0.0  # `rairl localize`'s default reward threshold (D = ½) for traces with no localize run beside them
FILES = ("metrics.json", "results.json")
TRACE_FILES = {"rerank": "scored.jsonl", "localize": "predictions.jsonl"}
SCORE_FIELDS = {"response", "tokens", "token_rewards", "step_scores", "trace_scores"}  # a `rairl score` row
KINDS: dict[str, Callable[[str, dict], bool]] = {
    "rerank": lambda name, d: name == "metrics.json" and "pass@k" in d and "select" in d,
    "localize": lambda name, d: (
        name == "metrics.json" and isinstance(d.get("reward"), dict) and "acc_error" in d["reward"]
    ),
    "eval": lambda name, d: name == "metrics.json" and isinstance(d.get("splits"), dict),
    "search": lambda name, d: (
        name == "metrics.json" and isinstance(d.get("results"), dict) and all("/N=" in k for k in d["results"])
    ),
    "demo": lambda name, d: name == "results.json" and ("training" in d or "claims" in d),
    "metrics": lambda name, d: name == "metrics.json",
}


@dataclass
class Found:
    kind: str
    path: Path
    data: dict[str, Any]  # the metrics (or results) file's content; {} for a `rairl score` file
    label: str  # the folder relative to RUN_DIR (a score file: the file)

    @property
    def traces(self) -> Path | None:
        """The traces file: beside a rerank or localize metrics.json when there is one; a score file itself."""
        if self.kind == "score":
            return self.path
        if self.kind not in TRACE_FILES:
            return None
        path = self.path.parent / TRACE_FILES[self.kind]
        return path if path.is_file() else None


def read_object(path: Path) -> dict[str, Any]:
    """A JSON file holding one object (`rairl.io.read_json`, which names the line of a syntax error)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, None, None, f"expected a JSON object, got {type(data).__name__}")
    return data


def is_score_file(path: Path) -> bool:
    """Is `path` a `rairl score` output? Its first row tells (any other JSONL, even a malformed one, is not)."""
    rows = read_jsonl(path)
    try:
        _, first = next(rows, (None, None))
    except DataError:
        return False
    finally:
        rows.close()
    return first is not None and SCORE_FIELDS <= first.keys()


def discover(run_dir: Path) -> list[Found]:
    """The outputs under `run_dir`, folders and files in sorted order, hidden folders skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(run_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        label = folder.relative_to(run_dir).as_posix()
        for name in sorted(filenames):
            path = folder / name
            if name in FILES:
                data = read_object(path)
                kind = next((k for k, matches in KINDS.items() if matches(name, data)), None)
                if kind is not None:
                    found.append(Found(kind, path, data, run_dir.name if label == "." else label))
            elif name.endswith(".jsonl") and is_score_file(path):
                found.append(Found("score", path, {}, path.relative_to(run_dir).as_posix()))
    return found


def localize_tau(found: list[Found], near: Path) -> float:
    """τ of the localize run nearest `near` (the longest shared folder path; the first on ties), else DEFAULT_TAU."""
    runs = [f for f in found if f.kind == "localize"]
    if not runs:
        return DEFAULT_TAU
    nearest = max(runs, key=lambda f: len(Path(os.path.commonpath([f.path.parent, near])).parts))
    return nearest.data["reward"]["threshold"]


def read_traces(f: Found, found: list[Found]) -> list[heatmap.Trace]:
    """The traces `f` saved; a rerank or score file's predicted first error is its first step below the τ of the
    nearest localize run."""
    if f.kind == "localize":
        return heatmap.read_predictions(f.traces)
    return heatmap.read_scored(f.traces, localize_tau(found, f.path.parent))
