"""The outputs a run folder holds, found by shape at any depth, each file once (`KINDS`, first match wins):

    rerank     metrics.json with "pass@k" and "select" (+ scored.jsonl)                 `rairl rerank`
    localize   metrics.json with "reward": {"acc_error", ...} (+ predictions.jsonl)      `rairl localize`
    eval       metrics.json with "splits"                                                 `rairl eval`
    search     metrics.json with "results" keyed method/scorer/N=n                        `rairl search`
    demo       results.json with "training" or "claims"                                   `rairl demo`
    metrics    any other metrics.json (its summaries are tabled)
    score      a JSONL whose first row has response, tokens, token_rewards, step_scores   `rairl score`
               and trace_scores

and the traces of the three that save them (`Found.traces`), read by `rairl.report.heatmap`. Each file found is
checked against what the report reads of its kind (`check_shape`): a field of another type is one line naming
the file and field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return _number(value) and math.isfinite(value) and value > 0


def _summaries(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(field, problem) of each dict with a "mean" under `value` that cannot be shown as mean [95% CI] (n)."""
    stack = [(where, value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, dict):
            if "mean" in item and item["mean"] is not None and not _number(item["mean"]):
                yield f"{at}.mean".lstrip("."), f"expected a number or null, got {item['mean']!r}"
            ci = item.get("ci95") if "mean" in item else None
            if ci is not None and not (
                isinstance(ci, list) and len(ci) >= 2 and all(v is None or _number(v) for v in ci[:2])
            ):
                yield f"{at}.ci95".lstrip("."), f"expected [low, high] (numbers or null), got {ci!r}"
            stack += [(f"{at}.{k}".lstrip("."), v) for k, v in item.items() if k != "config"]
        elif isinstance(item, list):
            stack += [(f"{at}[{i}]", v) for i, v in enumerate(item)]


def _objects(data: dict, name: str) -> Iterator[tuple[str, str]]:
    """`data[name]` must be an object of objects."""
    for key, value in data[name].items():
        if not isinstance(value, dict):
            yield f"{name}.{key}", f"expected an object, got {type(value).__name__}"


def _pass_keys(data: dict, where: str) -> Iterator[tuple[str, str]]:
    """Keys `pass@K` of the object at `where` must name an integer K and hold a summary (so must `greedy`)."""
    for key, value in data.items():
        if key.startswith("pass@") and not (key[5:].isdigit() and int(key[5:]) >= 1):
            yield f"{where}.{key}", "expected pass@K with an integer K >= 1"
        elif (key.startswith("pass@") or key == "greedy") and not isinstance(value, dict):
            yield f"{where}.{key}", f"expected a summary object, got {type(value).__name__}"


def _rerank(d: dict) -> Iterator[tuple[str, str]]:
    for name in ("select", "pass@k"):
        if not isinstance(d[name], dict):
            yield name, f"expected an object, got {type(d[name]).__name__}"
            return
        yield from _objects(d, name)
    yield from _pass_keys(d["pass@k"], "pass@k")


def _localize(d: dict) -> Iterator[tuple[str, str]]:
    if not _number(d["reward"].get("threshold")):
        yield "reward.threshold", f"expected a number, got {d['reward'].get('threshold')!r}"
    for method in ("reward", "likelihood"):
        part = d.get(method)
        if isinstance(part, dict) and not isinstance(part.get("by_perturbation") or {}, dict):
            yield f"{method}.by_perturbation", "expected an object or null"


def _eval(d: dict) -> Iterator[tuple[str, str]]:
    yield from _objects(d, "splits")
    for split, metrics in d["splits"].items():
        if isinstance(metrics, dict):
            yield from _pass_keys(metrics, f"splits.{split}")


def _search(d: dict) -> Iterator[tuple[str, str]]:
    yield from _objects(d, "results")
    for key, m in d["results"].items():
        if key.count("/") < 2:
            yield f"results.{key}", "expected a key method/scorer/N=n"
        elif isinstance(m, dict) and not (
            _positive(m.get("tokens_per_question")) and isinstance(m.get("accuracy"), dict)
        ):
            yield f"results.{key}", "expected tokens_per_question (a number > 0: a log axis) and accuracy (a summary)"


def _demo(d: dict) -> Iterator[tuple[str, str]]:
    for name, kind in (("claims", list), ("training", dict)):
        if d.get(name) is not None and not isinstance(d[name], kind):
            yield name, f"expected {'a list' if kind is list else 'an object'} or null, got {type(d[name]).__name__}"


SHAPES: dict[str, Callable[[dict], Iterator[tuple[str, str]]]] = {
    "rerank": _rerank,
    "localize": _localize,
    "eval": _eval,
    "search": _search,
    "demo": _demo,
}


def check_shape(kind: str, data: dict[str, Any], path: Path) -> None:
    """The fields the report reads of a `kind` file have the types it reads them as, and every summary (a dict with
    "mean") shows as numbers; else a DataError naming the file and the field (a hand-edited or foreign file is one
    line, not a traceback)."""
    for field, problem in chain(SHAPES.get(kind, lambda d: ())(data), _summaries(data)):
        raise DataError(path, None, field, problem)


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
                    check_shape(kind, data, path)
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
