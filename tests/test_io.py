"""`rairl.io` readers: every JSON they hand on is valid, shallow enough to recurse into and real text; each refusal
names the file and line (and the field where there is one)."""

from __future__ import annotations

import pytest

from rairl.io import MAX_DEPTH, DataError, parse_json, read_json, read_jsonl


def test_deep_nesting_is_refused_with_its_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"b": ' + "[" * 5000 + "\n")  # past Python's recursion limit: json.loads would raise
    with pytest.raises(DataError, match=rf"rows.jsonl, line 2: JSON nested deeper than {MAX_DEPTH} levels"):
        list(read_jsonl(path))
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{\n  "splits":\n' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "}")
    with pytest.raises(DataError, match=r"metrics.json, line 3: JSON nested deeper"):
        read_json(metrics)


def test_brackets_inside_strings_and_nesting_at_the_limit_are_read():
    assert parse_json('{"a": "' + "[" * 500 + '"}', "f.json") == {"a": "[" * 500}
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(deep, "f.json") is not None


@pytest.mark.parametrize(
    "text, field",
    [
        ('{"prompt": "a\\ud800b"}', "prompt"),
        ('{"steps": ["ok", "\\uDC00"]}', "steps[1]"),
        ('{"\\ud800": 1}', "\\ud800"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field(tmp_path, text, field):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "fine"}\n' + text + "\n")
    with pytest.raises(DataError, match="a lone surrogate") as err:
        list(read_jsonl(path))
    assert str(err.value).startswith(f"{path}, line 2, field '{field}': a lone surrogate (\\u")
    str(err.value).encode("utf-8")  # printable


def test_a_surrogate_pair_is_text():
    assert parse_json('{"a": "\\ud83d\\ude00"}', "f.json") == {"a": "\N{GRINNING FACE}"}
