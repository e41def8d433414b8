"""A calculator that walks the syntax tree of an arithmetic expression: never eval, never
compiled code. Numbers stay exact fractions through + - * / // % and integer powers; math
functions and irrational constants turn them into floats."""
import ast
import math
from decimal import Decimal, localcontext
from fractions import Fraction

# Every exact intermediate value (numerator and denominator) must fit this many bits, about
# 3,000 decimal digits; powers and factorials are refused before they are computed.
MAX_BITS = 10_000
MAX_FACTORIAL = 1000
MAX_ROUND_DIGITS = 100
LARGEST_EXACT_JSON_INTEGER = 2 ** 53

CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}

REFUSED_SYNTAX = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "and/or are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
}


class CalculationError(ValueError):
    """The expression cannot be calculated; the message says why, for the caller."""


def calculate(expression):
    """{"result": number (or a string in scientific notation beyond a double's range),
    "exact": "p/q" or the integer's digits, present only when the result is exact}."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as error:
        raise CalculationError(f"invalid syntax at column {error.offset or 0}") from None
    except UnicodeEncodeError as error:  # a lone surrogate: Python's parser reads UTF-8
        raise CalculationError(f"invalid character at column {error.start + 1}") from None
    except (RecursionError, MemoryError):
        raise CalculationError("the expression is nested too deeply") from None
    try:
        value = Evaluator(expression.strip()).evaluate(tree.body)
    except RecursionError:
        raise CalculationError("the expression is nested too deeply") from None
    return presented(value)


def presented(value):
    if isinstance(value, float):
        return {"result": value}
    exact = str(value.numerator) if value.denominator == 1 else str(value)
    if value.denominator == 1 and abs(value.numerator) <= LARGEST_EXACT_JSON_INTEGER:
        return {"result": value.numerator, "exact": exact}
    try:
        approximate = float(value)
    except OverflowError:
        approximate = 0.0
    if approximate == 0.0 or math.isinf(approximate):
        return {"result": scientific(value), "exact": exact}
    return {"result": approximate, "exact": exact}


def scientific(value):
    with localcontext() as context:
        context.prec = 17
        return f"{Decimal(value.numerator) / Decimal(value.denominator):.16e}"


class Evaluator:
    def __init__(self, source):
        self.source = source

    def evaluate(self, node):
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            if node.id not in CONSTANTS:
                raise CalculationError(f"unknown name '{node.id}'")
            return CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            operand = self.evaluate(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise CalculationError(REFUSED_SYNTAX.get(type(node), f"{type(node).__name__} is not "
                                                              "allowed in an expression"))

    def number(self, node):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalculationError("only numbers are allowed (no strings, booleans or None)")
        if isinstance(node.value, int):
            return checked(Fraction(node.value))
        # The literal's own digits, so 0.1 is exactly one tenth; huge exponents are refused
        # before Fraction expands them.
        text = ast.get_source_segment(self.source, node).replace("_", "")
        if abs(Decimal(text).adjusted()) > MAX_BITS // 3:
            raise CalculationError(f"the number {text} is too large")
        return checked(Fraction(text))

    def binary(self, node):
        # Long sums like 1+2+...+500 nest to the left: walk that spine in a loop, not by
        # recursion.
        spine = []
        while isinstance(node, ast.BinOp):
            spine.append(node)
            node = node.left
        value = self.evaluate(node)
        for operation_node in reversed(spine):
            value = self.apply(operation_node.op, value, self.evaluate(operation_node.right))
        return value

    def apply(self, operator, left, right):
        if isinstance(operator, ast.BitXor):
            raise CalculationError("^ is not a power here: write ** (2**3 = 8)")
        operation = BINARY.get(type(operator))
        if operation is None:
            raise CalculationError(f"the operator {type(operator).__name__} is not allowed")
        try:
            return finite(operation(left, right))
        except ZeroDivisionError:
            raise CalculationError("division by zero") from None
        except OverflowError:
            raise CalculationError("the result is too large") from None
        except ValueError as error:
            if isinstance(error, CalculationError):
                raise
            raise CalculationError("math domain error") from None

    def call(self, node):
        if not isinstance(node.func, ast.Name):
            raise CalculationError("only functions named in the list can be called")
        if node.func.id not in FUNCTIONS:
            raise CalculationError(
                f"unknown function '{node.func.id}'; known: {', '.join(FUNCTIONS)}")
        name = node.func.id
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise CalculationError(f"{name}() takes positional arguments only")
        fewest, most, function = FUNCTIONS[name]
        if not fewest <= len(node.args) <= (most or len(node.args)):
            expected = str(fewest) if fewest == most else f"{fewest} to {most or 'any'}"
            raise CalculationError(f"{name}() takes {expected} arguments")
        arguments = [self.evaluate(arg) for arg in node.args]
        try:
            return finite(function(*arguments))
        except ZeroDivisionError:
            raise CalculationError(f"division by zero in {name}()") from None
        except OverflowError:
            raise CalculationError(f"the result of {name}() is too large") from None
        except ValueError as error:
            if isinstance(error, CalculationError):
                raise
            raise CalculationError(f"math domain error in {name}()") from None


def checked(value):
    if isinstance(value, Fraction) and max(
            value.numerator.bit_length(), value.denominator.bit_length()) > MAX_BITS:
        raise CalculationError("the result would have more than about 3,000 digits")
    return value


def finite(value):
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CalculationError("the result is not a finite number")
        return value
    if isinstance(value, int):
        value = Fraction(value)
    return checked(value)


def real(value):
    """What math's functions take: an int when exact and integral, else a float."""
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    return float(value)


def integer(value, name):
    if isinstance(value, float) or value.denominator != 1:
        raise CalculationError(f"{name}() takes integers only")
    return value.numerator


def power(base, exponent):
    if isinstance(base, Fraction) and isinstance(exponent, Fraction) and exponent.denominator == 1:
        if abs(base) not in (0, 1):
            bits = max(base.numerator.bit_length(), base.denominator.bit_length())
            if bits * abs(exponent.numerator) > MAX_BITS:
                raise CalculationError("the result would have more than about 3,000 digits")
        return base ** exponent.numerator
    if base < 0 and not float(exponent).is_integer():
        raise CalculationError("a negative number to a fractional power is not real")
    if base == 0 and exponent < 0:
        raise ZeroDivisionError
    return math.pow(float(base), float(exponent))


def square_root(value):
    if isinstance(value, Fraction) and value >= 0:
        top, bottom = math.isqrt(value.numerator), math.isqrt(value.denominator)
        if top * top == value.numerator and bottom * bottom == value.denominator:
            return Fraction(top, bottom)
    return math.sqrt(real(value))


def factorial(value):
    n = integer(value, "factorial")
    if n < 0:
        raise CalculationError("factorial() takes a non-negative integer")
    if n > MAX_FACTORIAL:
        raise CalculationError(f"factorial() takes integers up to {MAX_FACTORIAL}")
    return math.factorial(n)


def logarithm(value, base=None):
    if base is None:
        return math.log(real(value))
    return math.log(real(value), real(base))


def rounded(value, digits=None):
    """Halves round away from zero, as on a pocket calculator (Python's round() rounds
    2.5 to 2)."""
    places = 0 if digits is None else integer(digits, "round")
    if abs(places) > MAX_ROUND_DIGITS:
        raise CalculationError(f"round() takes up to {MAX_ROUND_DIGITS} digits")
    scale = Fraction(10) ** places
    scaled = abs(Fraction(value)) * scale
    result = math.floor(scaled + Fraction(1, 2)) / scale
    result = result if value >= 0 else -result
    return result if isinstance(value, Fraction) else float(result)


BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: power,
}


def float_function(function):
    return lambda *values: function(*(real(value) for value in values))


# name: (fewest arguments, most arguments or None for any, function)
FUNCTIONS = {
    "sqrt": (1, 1, square_root),
    "sin": (1, 1, float_function(math.sin)),
    "cos": (1, 1, float_function(math.cos)),
    "tan": (1, 1, float_function(math.tan)),
    "asin": (1, 1, float_function(math.asin)),
    "acos": (1, 1, float_function(math.acos)),
    "atan": (1, 1, float_function(math.atan)),
    "atan2": (2, 2, float_function(math.atan2)),
    "log": (1, 2, logarithm),
    "log10": (1, 1, float_function(math.log10)),
    "log2": (1, 1, float_function(math.log2)),
    "exp": (1, 1, float_function(math.exp)),
    "floor": (1, 1, math.floor),
    "ceil": (1, 1, math.ceil),
    "factorial": (1, 1, factorial),
    "gcd": (1, None, lambda *values: math.gcd(*(integer(v, "gcd") for v in values))),
    "abs": (1, 1, abs),
    "round": (1, 2, rounded),
    "min": (1, None, min),
    "max": (1, None, max),
    "hypot": (1, None, float_function(math.hypot)),
    "degrees": (1, 1, float_function(math.degrees)),
    "radians": (1, 1, float_function(math.radians)),
}
