"""What the speed benchmarks share: the command-line options every script takes, the median and spread of repeated
measurements, the machine and library versions a figure was taken with, and the JSON file it is saved in.

A figure is the median of n >= 5 repeats; its spread is given twice, as min-max and as the interquartile range
(q1-q3, `statistics.quantiles`, inclusive method). Scripts run from the repository root as
`.venv/bin/python benchmarks/NAME.py` (this folder is then on `sys.path`, so `import common` works).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SMOKE_RESULTS = RESULTS / "smoke"  # smoke runs never overwrite the real figures


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes: --smoke, --out, --threads, --seed."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny setting (hidden 32, 1 layer, 1-2 repeats) that only proves the script runs",
    )
    p.add_argument(
        "--out",
        default=None,
        help=f"folder for the JSON (default {RESULTS.relative_to(ROOT)}, with --smoke "
        f"{SMOKE_RESULTS.relative_to(ROOT)})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads; 0 = $OMP_NUM_THREADS if set, else every usable core",
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def out_dir(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else (SMOKE_RESULTS if args.smoke else RESULTS)


def summarize(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """Median and spread of repeated measurements: n, median, mean, min, max, q1, q3 and the values themselves."""
    if not values:
        raise ValueError("summarize: no measurements (run at least one repeat)")
    xs = sorted(float(v) for v in values)
    q1, q3 = (statistics.quantiles(xs, n=4, method="inclusive")[i] for i in (0, 2)) if len(xs) > 1 else (xs[0], xs[0])
    r = lambda v: round(v, digits)  # noqa: E731
    return {
        "n": len(xs),
        "median": r(statistics.median(xs)),
        "mean": r(statistics.fmean(xs)),
        "min": r(xs[0]),
        "max": r(xs[-1]),
        "q1": r(q1),
        "q3": r(q3),
        "values": [r(float(v)) for v in values],
    }


def ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
    """median(a) / median(b), rounded."""
    return round(a["median"] / b["median"], 3)


def fmt(summary: dict[str, Any], unit: str = "s", digits: int = 3) -> str:
    """'median unit [min-max]' for a table cell."""
    return f"{summary['median']:.{digits}f} {unit} [{summary['min']:.{digits}f}-{summary['max']:.{digits}f}]"


def environment() -> dict[str, Any]:
    """The machine and software a figure was measured on (recorded in every result file: `rairl.environment`)."""
    from rairl.environment import environment as env

    return env()


def save(name: str, payload: dict[str, Any], args: argparse.Namespace) -> Path:
    """Write `{benchmark, command, smoke, environment, **payload}` to `<out>/<name>.json`; returns the path."""
    from rairl.io import write_json

    path = out_dir(args) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.executable).name, *map(str, sys.argv)])
    write_json(
        path, {"benchmark": name, "command": command, "smoke": args.smoke, "environment": environment(), **payload}
    )
    return path


def write_result(path: Path, payload: dict[str, Any]) -> None:
    """`payload` with this machine's `environment()` as a JSON result file (atomic)."""
    from rairl.io import write_json

    write_json(path, {**payload, "environment": environment()})


def sync() -> None:
    """Wait for queued GPU work, so that a wall-clock reading covers it (no-op on CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> float:
    """Seconds `fn()` takes, GPU work included."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def set_threads(threads: int) -> int:
    from rairl.trainers.common import set_threads as set_torch_threads

    return set_torch_threads(threads)


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain-text table for the console."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def flags(**options: Any) -> list[str]:
    """`flags(model="tiny", max_steps=3)` -> `["--model", "tiny", "--max_steps", "3"]`."""
    return [item for key, value in options.items() for item in (f"--{key}", str(value))]


def run_once(marker: Path, argv: list[str]) -> None:
    """`rairl ARGV` unless `marker` (a file the command writes last) exists: a finished step is read, not rerun."""
    from rairl.cli import main

    if not marker.is_file():
        assert main(argv) == 0, argv


def smoke_base(folder: Path, steps: int) -> Path:
    """A tiny policy (32 wide, 1 layer) after `steps` SFT steps in `folder`, trained once: a smoke run's base."""
    tiny = flags(model="tiny", hidden_size=32, num_layers=1, max_steps=steps, report_to="none", save_steps=10**9,
                 resume_from_checkpoint="auto", output_dir=folder)  # fmt: skip
    run_once(folder / "config.json", ["sft", *tiny])
    return folder
