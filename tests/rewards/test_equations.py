import random
from fractions import Fraction

from rairl.rewards.equations import (
    NUMBER_RE,
    OPERATOR_RE,
    evaluate,
    find_equations,
    nearby_numbers,
    number_value,
    other_number,
    write_number,
)


def test_numbers_and_signs():
    assert [m[0] for m in NUMBER_RE.finditer("7-9=-2, 5--4 and $1,250.50 or x2 .5")] == [
        "7",
        "9",
        "-2",
        "5",
        "-4",
        "1,250.50",
    ]
    assert number_value("1,250.50") == Fraction(2501, 2)


def test_operators_sit_between_operands():
    assert [m[1] for m in OPERATOR_RE.finditer("7-9=-2; 0.2 x 50; (3+4)*2; km/h")] == ["-", "x", "+", "*"]


def test_evaluate():
    assert evaluate("48/2") == 24
    assert evaluate("0.2 x 50") == 10
    assert evaluate("$1,000 - $250") == 750
    assert evaluate("(3+4)*2") == 14
    assert evaluate("5--4") == 9
    assert evaluate("12/60") == Fraction(1, 5)
    assert evaluate("1/0") is None
    assert evaluate("2**3") is None  # not arithmetic of the kind written in traces
    assert evaluate("p+3") is None


def test_write_number_keeps_the_format():
    assert write_number(Fraction(1234), "1,000") == "1,234"
    assert write_number(Fraction(5, 2), "0.2") == "2.5"
    assert write_number(Fraction(5, 2), "3") is None  # an integer result stays an integer
    assert write_number(Fraction(1, 3), "0.5") is None
    assert write_number(Fraction(-4), "7") == "-4"


def test_nearby_numbers_keep_sign_and_decimals():
    rng = random.Random(0)
    assert sorted(nearby_numbers(Fraction(1), "1", rng)) == [0, 2, 3, 4, 11]
    assert sorted(nearby_numbers(Fraction(3, 2), "1.50", rng))[:3] == [Fraction(n, 100) for n in (147, 148, 149)]
    assert other_number("1,250.50", rng) != "1,250.50"


def test_find_equations_in_arith_and_gsm8k_lines():
    line = "7-9=-2"
    (eq,) = find_equations(line)
    assert line[slice(*eq.expression)] == "7-9" and [line[a:b] for a, b in eq.results] == ["-2"]
    line = "Natalia sold 48/2 = <<48/2=24>>24 clips, 0.2 x 50 = $<<0.2*50=10>>10."
    first, second = find_equations(line)
    assert line[slice(*first.expression)] == "48/2" and line[slice(*first.mirror)] == "48/2"
    assert [line[a:b] for a, b in first.results] == ["24", "24"]
    assert line[slice(*second.expression)] == "0.2 x 50"
    # An annotation with units in the visible text: the annotation is the expression.
    line = "5 snakes/jaguar * 6 jaguars = <<5*6=30>>30 snakes"
    (eq,) = find_equations(line)
    assert line[slice(*eq.expression)] == "5*6" and eq.mirror is None
    assert [line[a:b] for a, b in eq.results] == ["30", "30"]
    assert find_equations("There are 3 cats.") == []
