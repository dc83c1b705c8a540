from pathlib import Path

import pytest

from rairl.io import DataError
from rairl.tasks.choices import answer_letter, format_choices, gold_index, match_option, parse_choices

OPTIONS = ["Aspirin", "Alteplase", "Metoprolol"]


def test_format_and_parse_round_trip():
    text = format_choices("Which drug?  ", OPTIONS)
    assert text == "Which drug?\nAnswer Choices:\nA. Aspirin\nB. Alteplase\nC. Metoprolol"
    assert parse_choices(text) == OPTIONS
    assert parse_choices("no block here") == []
    with pytest.raises(ValueError, match="need 1 to 26 options"):
        format_choices("q", [])


def test_parse_choices_accepts_parenthesised_letters():
    assert parse_choices("q\nAnswer Choices:\n(A) x\n(B) y") == ["x", "y"]


def test_match_option_ignores_case_punctuation_and_spacing():
    assert match_option("  alteplase. ", OPTIONS) == 1
    assert match_option("Heparin", OPTIONS) is None
    assert match_option("x", ["x", "X"]) is None  # ambiguous


@pytest.mark.parametrize(
    "text, letter",
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B. Alteplase", "B"),
        ("Alteplase", "B"),
        ("Alteplase. Explanation: it lyses the clot.", "B"),
        ("A. Alteplase", None),  # a letter that contradicts its text names no option for sure
        ("D", None),
        ("Heparin", None),
    ],
)
def test_answer_letter(text, letter):
    assert answer_letter(text, OPTIONS) == letter


def test_gold_index():
    assert gold_index("(c)", "ABC", Path("f.jsonl"), 4, "answer") == 2
    assert gold_index("P", ["A", "B", "P"], Path("f.jsonl"), 4, "answer_idx") == 2
    with pytest.raises(DataError, match=r"f.jsonl, line 4, field 'answer': answer 'D' is not one of"):
        gold_index("D", "ABC", Path("f.jsonl"), 4, "answer")
    with pytest.raises(DataError, match="'AB' is not one of"):
        gold_index("AB", "ABC", Path("f.jsonl"), 4, "answer")
