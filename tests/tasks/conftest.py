"""Fixtures of the task tests: JSONL files written by hand or copied from the staged data, and a trace's steps."""

from __future__ import annotations

import json
from itertools import islice

import pytest


@pytest.fixture(scope="session")
def write():
    """`write(path, lines) -> path`: JSONL, dicts as JSON and strings verbatim (to plant malformed lines)."""

    def write_lines(path, lines):
        path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines), encoding="utf-8")
        return path

    return write_lines


@pytest.fixture
def real_lines(shared_data, write, tmp_path):
    """`real_lines(name, n) -> path`: the first `n` lines of the staged file `shared_data / name`, copied into the
    test's tmp_path under the same file name; the test skips when the file is not staged."""

    def copy(name: str, n: int):
        source = shared_data / name
        if not source.is_file():
            pytest.skip(f"staged data not found at {source}")
        with source.open(encoding="utf-8") as f:
            return write(tmp_path / source.name, [line.rstrip("\n") for line in islice(f, n)])

    return copy


@pytest.fixture(scope="session")
def steps():
    """`steps(text) -> list[str]`: a trace's non-blank lines."""
    return lambda text: [line for line in text.split("\n") if line.strip()]
