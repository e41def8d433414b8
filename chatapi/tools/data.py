"""data tools: calculator, unit_convert, json_query, csv_analyze."""
import math
import re
import time
import tokenize
from fractions import Fraction
from functools import cache
from operator import itemgetter

import jmespath
import pint
from jmespath.visitor import TreeInterpreter

from .. import strict_json
from ..errors import ValidationFailed
from .arithmetic import CalculationError, calculate
from .csv_summary import MAX_CELLS, MAX_COLUMNS, MAX_ROWS, summarize
from .tool import Tool


def calculator(arguments, _context):
    try:
        return {"expression": arguments["expression"], **calculate(arguments["expression"])}
    except CalculationError as error:
        raise ValidationFailed(details={"expression": [str(error)]}) from None


CALCULATOR = Tool(
    name="calculator",
    category="data",
    description=(
        "Evaluate an arithmetic expression exactly (fractions, not floating point, for + - * / "
        "// % and integer powers; 0.1+0.2 is exactly 3/10). Operators: + - * / // % ** and "
        "parentheses (^ is not a power: write **). Functions: sqrt, sin, cos, tan, asin, acos, "
        "atan, atan2, log(x) or log(x, base), log10, log2, exp, floor, ceil, factorial, gcd, "
        "abs, round(x[, digits]), min, max, hypot, degrees, radians; constants pi, e, tau. "
        "Answers result (a number) and, when exact, exact (\"p/q\" or every digit)."),
    parameters={
        "type": "object",
        "properties": {
            "expression": {"type": "string", "minLength": 1, "maxLength": 1000,
                           "description": "the expression, e.g. \"sqrt(2) * (3 + 4/5)\""},
        },
        "required": ["expression"],
    },
    handler=calculator,
)


# Unit symbols pint does not know by these spellings.
UNIT_ALIASES = {"℃": "degC", "℉": "degF", "°c": "degC", "°f": "degF"}
# A unit expression: names joined by * / or spaces, each with an optional small numeric
# power. pint evaluates numbers in unit strings itself, so "m**10**10**10" would hang it:
# numbers appear only as one- or two-digit powers of a name.
UNIT_FACTOR = r"°?[^\W\d]\w*(?:\s*(?:\*\*|\^)\s*[-+]?\d{1,2}(?:\.\d+)?)?"
UNIT_EXPRESSION = re.compile(
    rf"[\s(]*{UNIT_FACTOR}(?:[\s()]*(?:[*/]|\s)[\s(]*{UNIT_FACTOR})*[\s)]*")


@cache
def unit_registry():
    """One registry per process, built on first use (it takes a few tenths of a second).
    Its factors are fractions, so 100 degC is exactly 212 degF and 32 degF exactly 0 degC."""
    return pint.UnitRegistry(non_int_type=Fraction)


def parsed_unit(text, field):
    spelled = UNIT_ALIASES.get(text.strip().lower(), text.strip())
    if not UNIT_EXPRESSION.fullmatch(spelled):
        raise ValidationFailed(details={field: [f"'{text}' is not a unit expression"]})
    try:
        return unit_registry().parse_units(spelled)
    except pint.UndefinedUnitError:
        raise ValidationFailed(details={field: [f"unknown unit '{text}'"]}) from None
    # pint's parser reports malformed input with assorted exception types.
    except (pint.PintError, ValueError, AssertionError, SyntaxError, TypeError,
            tokenize.TokenError):
        raise ValidationFailed(details={field: [f"'{text}' is not a unit expression"]}) from None


def spelled(units):
    """`meter ** 3` for pint's {"meter": Fraction(3)}: pint's own formatting fails on the
    Fraction powers this registry makes (TypeError from Fraction.__format__)."""
    container = getattr(units, "_units", units)
    return " * ".join(name if power == 1 else f"{name} ** {power}"
                      for name, power in sorted(container.items())) or "dimensionless"


def unit_convert(arguments, _context):
    value = arguments["value"]
    # An integer is always finite (and math.isfinite overflows on one beyond a double).
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationFailed(details={"value": ["must be a finite number"]})
    source = parsed_unit(arguments["from_unit"], "from_unit")
    target = parsed_unit(arguments["to_unit"], "to_unit")
    try:
        # Quantity(value, unit), not value * unit: offset units (degC, degF) need it.
        result = float(unit_registry().Quantity(Fraction(value), source).to(target).magnitude)
    except pint.DimensionalityError as error:
        raise ValidationFailed(details={"to_unit": [
            f"cannot convert {spelled(error.units1)} ({spelled(error.dim1)}) to "
            f"{spelled(error.units2)} ({spelled(error.dim2)})"]}) from None
    except pint.OffsetUnitCalculusError:
        raise ValidationFailed(details={"from_unit": [
            "a temperature scale (degC, degF) cannot be combined with other units"]}) from None
    except (ZeroDivisionError, OverflowError):
        result = math.inf
    if not math.isfinite(result):
        raise ValidationFailed(details={"value": ["the result is out of range"]})
    return {"value": value, "from_unit": arguments["from_unit"],
            "to_unit": arguments["to_unit"], "result": result}


UNIT_TEXT = {"type": "string", "minLength": 1, "maxLength": 100}

UNIT_CONVERT = Tool(
    name="unit_convert",
    category="data",
    description=(
        "Convert a quantity between units of the same kind (length, mass, time, speed, "
        "temperature, energy, pressure, area, volume, data, ...). Units are English names or "
        "symbols: m, km, mile, ft, inch, kg, lb, oz, s, h, km/h, mph, degC, degF, kelvin, "
        "J, kWh, cal, Pa, psi, bar, L, gallon, m**2, acre, byte, GiB ..."),
    parameters={
        "type": "object",
        "properties": {
            "value": {"type": "number", "description": "the amount, in from_unit"},
            "from_unit": {**UNIT_TEXT, "description": "the unit of value, e.g. \"mile\""},
            "to_unit": {**UNIT_TEXT, "description": "the unit wanted, e.g. \"km\""},
        },
        "required": ["value", "from_unit", "to_unit"],
    },
    handler=unit_convert,
)


# A query may not run longer, nor build a value larger than this many nodes (strings weigh
# one node per 16 characters); multi-selects and flattens can double sizes at every step.
QUERY_SECONDS = 2.0
QUERY_MAX_NODES = 1_000_000


class QueryTooExpensive(Exception):
    pass


class BoundedInterpreter(TreeInterpreter):
    """jmespath's interpreter, checking time and the size of every value it makes."""

    def __init__(self):
        super().__init__()
        self.deadline = time.monotonic() + QUERY_SECONDS
        self.sizes = {}

    def visit(self, node, *args, **kwargs):
        if time.monotonic() > self.deadline:
            raise QueryTooExpensive("the query takes too long")
        value = super().visit(node, *args, **kwargs)
        if isinstance(value, (list, dict, str)) and size_of(value, self.sizes) > QUERY_MAX_NODES:
            raise QueryTooExpensive("the query builds a value that is too large")
        return value


CONTAINERS = (list, dict)


def size_of(root, sizes):
    """Nodes of root written out in full, a shared container counted once per use. `sizes`
    remembers each container's size (and keeps it alive, so ids stay unique) across calls,
    so a value built from earlier ones costs only its own length."""
    if not isinstance(root, CONTAINERS):
        return leaf_size(root)
    stack = [root]
    while stack:
        value = stack[-1]
        if id(value) in sizes:
            stack.pop()
            continue
        total, pending = 1, []
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, CONTAINERS):
                known = sizes.get(id(child))
                if known is None:
                    pending.append(child)
                else:
                    total += known[1]
            else:
                total += leaf_size(child)
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        sizes[id(value)] = (value, total)
    return sizes[id(root)][1]


def leaf_size(value):
    return 1 + len(value) // 16 if isinstance(value, str) else 1


def json_query(arguments, context):
    return {"result": context.compute(query_result, arguments["data"], arguments["expression"])}


def query_result(data, expression):
    """Run in the compute pool: the document, the query and its result are strict JSON."""
    if isinstance(data, str):
        data = parsed_json(data)
    try:
        result = BoundedInterpreter().visit(jmespath.compile(expression).parsed, data)
    except (jmespath.exceptions.JMESPathError, QueryTooExpensive) as error:
        raise ValidationFailed(details={"expression": [one_line(error)]}) from None
    except RecursionError:
        raise ValidationFailed(details={"expression": ["nested too deeply"]}) from None
    if not strict_json.is_finite(result):  # sum() and avg() of large numbers overflow
        raise ValidationFailed(details={"expression": [
            "the result holds a number beyond the range of a double"]})
    return result


def parsed_json(text):
    try:
        return strict_json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValidationFailed(details={"data": [
            f"a string must be strict JSON text: {one_line(error)}"]}) from None


def one_line(error):
    return " ".join(str(error).split())


JSON_QUERY = Tool(
    name="json_query",
    category="data",
    description=(
        "Query a JSON document with a JMESPath expression (https://jmespath.org), e.g. "
        "\"people[?age > `30`].name\", \"length(items)\", \"sort_by(items, &price)[0]\"."),
    parameters={
        "type": "object",
        "properties": {
            "data": {"description": "the JSON document: any JSON value; a string is read as "
                                    "JSON text"},
            "expression": {"type": "string", "minLength": 1, "maxLength": 1000,
                           "description": "the JMESPath expression"},
        },
        "required": ["data", "expression"],
    },
    handler=json_query,
    time_limit=itemgetter("COMPUTE_TIMEOUT"),
)


def csv_analyze(arguments, context):
    return context.compute(summarize, arguments["csv"], arguments.get("delimiter"),
                           arguments.get("group_by"), arguments["max_rows"])


CSV_ANALYZE = Tool(
    name="csv_analyze",
    category="data",
    description=(
        "Summarize CSV text whose first row is a header: row count, and per column its type "
        "(integer, number, boolean, date, text), non-empty and distinct counts, count/mean/"
        "min/max/sum for numbers, min/max for dates, the 5 most frequent values otherwise; "
        "with group_by, the rows and numeric statistics per value of that column. At most "
        f"{MAX_COLUMNS} columns; rows past {MAX_CELLS:,} cells are left out (truncated)."),
    parameters={
        "type": "object",
        "properties": {
            "csv": {"type": "string", "minLength": 1, "maxLength": 1_000_000,
                    "description": "the CSV text, header row first"},
            "delimiter": {"type": "string", "pattern": "^[^\"\\r\\n]$",
                          "description": "one character; guessed from the text when absent"},
            "group_by": {"type": "string", "maxLength": 200,
                         "description": "a column name to group the rows by"},
            "max_rows": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS,
                         "default": MAX_ROWS,
                         "description": "read at most this many data rows (truncated says "
                                        "when there were more)"},
        },
        "required": ["csv"],
    },
    handler=csv_analyze,
    time_limit=itemgetter("COMPUTE_TIMEOUT"),
)

TOOLS = [CALCULATOR, UNIT_CONVERT, JSON_QUERY, CSV_ANALYZE]
