"""`rairl report RUN_DIR`: one HTML page of what the commands in RUN_DIR saved (`rairl.report.html`)."""

from __future__ import annotations

from pathlib import Path

from rairl.report.html import Config, render

__all__ = ["Config", "run"]
POSITIONAL = "run_dir"  # `rairl report RUN_DIR` is `rairl report --run_dir RUN_DIR`


def run(config: Config) -> Path:
    return render(config)
