"""Tasks read from JSON Lines files: one file per split, loaded lazily, every row validated.

`--data` is either one `.jsonl` file, which serves as the split its stem names (`test.jsonl` -> "test") and as "train"
(so `rairl sft --data mydata.jsonl` trains on it), or a folder of `<split>.jsonl` files. A subclass turns one row into
an `Example` (`parse_row`) and raises `DataError` (file, 1-based line, field) for anything it cannot use, so bad input
never surfaces as a deep stack trace.
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any

from rairl.io import DataError, read_jsonl
from rairl.registry import did_you_mean
from rairl.tasks.base import ANSWER_MARK, Example, Task

logger = logging.getLogger(__name__)


def split_files(data: str | os.PathLike | None, task: str) -> dict[str, Path]:
    """Map split name -> file for `--data` (a `.jsonl` file or a folder of them)."""
    if data is None or not str(data).strip():
        raise ValueError(
            f"task {task!r} reads its examples from files: pass --data PATH, a .jsonl file (its name is the "
            f"split, e.g. train.jsonl) or a folder of <split>.jsonl files"
        )
    path = Path(data)
    if path.is_file():
        return {path.stem: path, "train": path}
    if path.is_dir():
        files = {p.stem: p for p in sorted(path.glob("*.jsonl"))}
        if not files:
            raise DataError(path, None, None, f"folder holds no .jsonl files (task {task!r} needs <split>.jsonl)")
        return files
    raise DataError(path, None, None, f"--data for task {task!r} not found (give a .jsonl file or a folder)")


def with_answer_line(trace: str, answer: str) -> str:
    """The response format: reasoning lines, then a last line `#### ANSWER`."""
    return f"{trace.rstrip()}\n{ANSWER_MARK} {answer}" if trace.strip() else f"{ANSWER_MARK} {answer}"


class FileTask(Task):
    """Base of the file-backed tasks. Subclasses set `name` and implement `parse_row` and `is_correct`."""

    def __init__(self, data: str | os.PathLike | None):
        self.files = split_files(data, self.name)
        self._cache: dict[str, list[Example]] = {}

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    def examples(self, split: str) -> list[Example]:
        if split not in self.files:
            if len(set(self.files.values())) == 1:
                path = next(iter(self.files.values()))
                raise ValueError(
                    f"{self.name}: no split {split!r} in --data {path}: a single file serves as the split its name "
                    f"gives ({path.stem!r}) and as 'train'; for {split!r} pass a file named {split}.jsonl or a folder "
                    f"of <split>.jsonl files"
                )
            raise ValueError(
                f"{self.name}: unknown split {split!r}; splits in --data: {list(self.files)}."
                f"{did_you_mean(split, self.files)}"
            )
        if split not in self._cache:
            path = self.files[split]
            rows = [self.parse_row(row, path, line, f"{self.name}-{split}-{line}") for line, row in read_jsonl(path)]
            if not rows:
                raise DataError(path, None, None, "no examples (the file is empty)")
            n_expert = sum(ex.expert is not None for ex in rows)
            logger.info("%s %s: %d examples, %d with an expert trace (%s)", self.name, split, len(rows), n_expert, path)
            self._cache[split] = rows
        return self._cache[split]

    @abstractmethod
    def parse_row(self, row: dict[str, Any], path: Path, line: int, example_id: str) -> Example:
        """One validated example from one row; raises `DataError(path, line, field, problem)` otherwise."""
