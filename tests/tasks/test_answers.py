from fractions import Fraction

import pytest

from rairl.tasks.answers import choice_equal, math_equal, numbers_equal, parse_number


@pytest.mark.parametrize(
    "text, value",
    [("1,000", 1000), ("1000.0", 1000), ("$5", 5), ("50%", 50), ("-3", -3), ("0.25", Fraction(1, 4)), ("7.", 7)],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", [None, "", "abc", "1/2", "5 apples", "--3"])
def test_parse_number_rejects_non_numbers(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(
    "predicted, gold",
    [
        ("1,000", "1000"),
        ("1000", "1,000"),
        ("1000.0", "1000"),
        ("$1,000.00", "1000"),
        ("$5", "5"),
        ("50%", "50"),
        ("-3", "-3.0"),
        ("0.5", r"\frac{1}{2}"),
        (r"\frac{1}{2}", "0.5"),
        (r"\frac12", "1/2"),
        ("1/2", "0.5"),
        (r"\sqrt{4}", "2"),
        (r"\boxed{5}", "5"),
    ],
)
def test_math_equal_accepts_equal_values(predicted, gold):
    assert math_equal(predicted, gold)


@pytest.mark.parametrize(
    "predicted, gold",
    [("5", "6"), ("1,000", "100"), ("0.5", r"\frac{1}{3}"), (None, "5"), ("", "5"), ("   ", "5"), ("50%", "0.5")],
)
def test_math_equal_rejects(predicted, gold):
    assert not math_equal(predicted, gold)


def test_numbers_equal_needs_two_numbers():
    assert numbers_equal("12", "12.00")
    assert not numbers_equal(None, "12")
    assert not numbers_equal("twelve", "12")


OPTIONS = ["One", "Two", "Three"]


@pytest.mark.parametrize(
    "predicted", ["B", "(B)", "B.", "b", "B:", "Two", " two ", "TWO", "B. Two", "(B) Two", "B) Two"]
)
def test_choice_equal_accepts_letter_or_text(predicted):
    assert choice_equal(predicted, "B", OPTIONS)


@pytest.mark.parametrize("predicted", [None, "", "A", "(C)", "Three", "Tw", "A. Two", "(A) Two"])
def test_choice_equal_rejects(predicted):
    # A lettered answer is judged by its letter, even when the text after it is the gold option's.
    assert not choice_equal(predicted, "B", OPTIONS)
