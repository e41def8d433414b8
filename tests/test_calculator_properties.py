"""Properties of the calculator (chatapi.tools.arithmetic), on generated expressions: it agrees
with Python evaluating the same expression exactly, and any text at all is either a result or
its one documented error, CalculationError."""
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatapi.tools.arithmetic import CalculationError, calculate

PROPERTY = settings(derandomize=True, deadline=None, max_examples=1000)

INTEGERS = st.integers(0, 10 ** 6).map(str)
DECIMALS = st.builds(lambda whole, part: f"{whole}.{part}", st.integers(0, 999),
                     st.integers(0, 999).map(lambda n: f"{n:03d}"))
NUMBERS = (INTEGERS | DECIMALS).map(lambda text: (text, f"F('{text}')"))


def combined(children):
    """An expression as the calculator reads it, paired with the same expression for Python
    with every number a Fraction (so Python's arithmetic is exact too)."""
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "%"]), children)
    power = st.tuples(children, st.just("**"), st.integers(-3, 3).map(lambda n: (f"({n})",) * 2))
    negated = children.map(lambda pair: (f"-({pair[0]})", f"-({pair[1]})"))
    return st.one_of(binary, power).map(lambda t: (f"({t[0][0]}){t[1]}({t[2][0]})",
                                                   python_operation(t[0][1], t[1], t[2][1]))
                                        ) | negated


def python_operation(left, operator, right):
    # Fraction // Fraction is an int, and int ** -1 a float: keep it a Fraction.
    source = f"({left}){operator}({right})"
    return f"F({source})" if operator == "//" else source


EXPRESSIONS = st.recursive(NUMBERS, combined, max_leaves=8)


def python_value(python_source):
    try:
        return eval(python_source, {"__builtins__": {}, "F": Fraction})  # the test's own oracle
    except ZeroDivisionError:
        return ZeroDivisionError


@PROPERTY
@given(EXPRESSIONS)
def test_the_calculator_agrees_with_python_on_exact_arithmetic(pair):
    source, python_source = pair
    expected = python_value(python_source)
    if expected is ZeroDivisionError:
        try:
            calculate(source)
        except CalculationError as error:
            assert "division by zero" in str(error)
            return
        raise AssertionError(f"{source} divides by zero but was calculated")
    answer = calculate(source)
    assert Fraction(answer["exact"]) == expected
    # A number, or beyond a double's range scientific notation: either within 1e-15 of exact.
    assert abs(Fraction(answer["result"]) - expected) <= abs(expected) * Fraction(1, 10 ** 15)


@settings(PROPERTY, max_examples=500)
@given(EXPRESSIONS.map(lambda pair: pair[0]),
       st.sampled_from(["sqrt", "sin", "cos", "atan", "exp", "log", "abs", "floor"]))
def test_functions_agree_with_python_math_within_tolerance(source, name):
    expression = f"{name}(({source}) / 1000000)"
    try:
        answer = calculate(expression)
    except CalculationError:
        return  # a domain or range refusal, the documented error
    value = float(Fraction(calculate(f"({source}) / 1000000")["exact"]))
    python = {"sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "atan": math.atan,
              "exp": math.exp, "log": math.log, "abs": abs, "floor": math.floor}[name](value)
    assert math.isclose(float(answer["result"]), python, rel_tol=1e-9, abs_tol=1e-12)


TOKENS = st.sampled_from([
    "0", "1", "7", "42", "3.5", ".5", "1e308", "1e-400", "9" * 30, "1_000", "0x1f", "1j", "(",
    ")", "+", "-", "*", "/", "//", "%", "**", "^", ",", " ", "pi", "e", "tau", "x", "sqrt(",
    "factorial(", "log(", "round(", "gcd(", "min(", "hypot(", "abs(", "'a'", "True", "None",
    "[1]", "lambda", ":", "__import__", ".real", "if", "else", "<", "and", "\x00", "\ud800"])
TEXTS = st.lists(TOKENS, max_size=25).map("".join) | st.text(max_size=60)


# Python's parser warns about some token soups ("1_000x": invalid decimal literal).
@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@PROPERTY
@given(TEXTS)
def test_any_text_is_a_result_or_a_calculation_error(text):
    try:
        answer = calculate(text)
    except CalculationError as error:
        assert str(error)
        return
    assert isinstance(answer["result"], (int, float, str))
    if isinstance(answer["result"], float):
        assert math.isfinite(answer["result"])
