"""Reading user files with errors that name the file, the line and the field; writing results atomically.

Every JSON a reader takes (`read_json`, `read_jsonl`) passes `parse_json`: valid JSON, nested at most `MAX_DEPTH`
levels (deeper input would make later code recurse past Python's limit), and no lone UTF-16 surrogate (`"\ud800"`
is valid JSON but not text: tokenizers and UTF-8 writers fail on it).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Bad input: the message names the file, the line (1-based) and the field."""

    def __init__(self, path: str | os.PathLike, line: int | None, field: str | None, problem: str):
        where = str(path) + (f", line {line}" if line is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.field = str(path), line, field


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, object)` for each non-blank line; a malformed line raises `DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, None, "file not found")
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            text = decode_line(raw, path, number)
            if not text.strip():
                continue
            row = parse_json(text, path, number)
            if not isinstance(row, dict):
                raise DataError(path, number, None, f"expected a JSON object, got {type(row).__name__}")
            yield number, row


def decode_line(raw: bytes, path: str | os.PathLike, line: int) -> str:
    """One line of a UTF-8 file (a byte-order mark on the first line is dropped); anything else is a `DataError`."""
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            path,
            line,
            None,
            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at byte {err.start + 1} of the line); save the file as UTF-8",
        ) from None


def read_text(path: str | os.PathLike) -> str:
    """A whole UTF-8 text file; a missing file or bytes that are not UTF-8 raise `DataError` with the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, None, "file not found")
    with path.open("rb") as f:
        return "".join(decode_line(raw, path, number) for number, raw in enumerate(f, start=1))


def read_json(path: str | os.PathLike) -> Any:
    """A whole JSON file (`parse_json`); bytes that are not UTF-8 or text that is not JSON raise `DataError` with
    the line."""
    return parse_json(read_text(path), path)


MAX_DEPTH = 100  # rairl's own files nest under 10 levels
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # a string (skipped whole) or a bracket
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(text: str, path: str | os.PathLike, line: int | None = None) -> Any:
    """`json.loads(text)` for `path` (`line`: the JSONL line `text` is; None: a whole file), refused with a
    `DataError` naming the line when it is not JSON, nests deeper than `MAX_DEPTH` or holds a lone surrogate."""
    if text.count("[") + text.count("{") > MAX_DEPTH and (deep := too_deep(text)) is not None:
        raise DataError(path, line or deep, None, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        where = line if line is not None else err.lineno
        raise DataError(path, where, None, f"not valid JSON ({err.msg} at column {err.colno})") from None
    if _SURROGATE.search(text) and (bad := _lone_surrogate(value)) is not None:
        field, escape = bad
        where = line if line is not None else text.count("\n", 0, re.search(re.escape(escape), text, re.I).start()) + 1
        raise DataError(path, where, field, f"a lone surrogate ({escape}) is not text; save valid Unicode")
    return value


def too_deep(text: str) -> int | None:
    """The line where brackets outside strings first nest deeper than `MAX_DEPTH` (None: they never do)."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return text.count("\n", 0, match.start()) + 1
        elif token in "]}":
            depth -= 1
    return None


def _lone_surrogate(value: Any) -> tuple[str | None, str] | None:
    """(the field holding it, e.g. `steps[2]`; the surrogate's JSON escape) of a string or key holding a
    lone surrogate; both printable (a surrogate cannot be written to a UTF-8 terminal)."""
    stack: list[tuple[str | None, Any]] = [(None, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack += [(k if where is None else f"{where}.{k}", k) for k in item]
            stack += [(k if where is None else f"{where}.{k}", v) for k, v in item.items()]
        elif isinstance(item, list):
            stack += [(f"{where or ''}[{i}]", v) for i, v in enumerate(item)]
        elif isinstance(item, str) and (bad := re.search("[\ud800-\udfff]", item)):
            printable = None if where is None else where.encode("utf-8", "backslashreplace").decode("utf-8")
            return printable, f"\\u{ord(bad.group()):04x}"
    return None


def require(
    row: dict[str, Any], field: str, path: str | os.PathLike, line: int | None, kind: type | tuple = str
) -> Any:
    """Return `row[field]`, or raise a `DataError` naming the file, line and field when missing or mistyped."""
    if field not in row:
        raise DataError(path, line, field, f"missing (present fields: {sorted(row)})")
    value = row[field]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(path, line, field, f"expected {names}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise DataError(path, line, field, "empty")
    return value


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; it replaces `path` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared like any new file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` (a checkpoint, say) only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            _rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            _rmtree(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
