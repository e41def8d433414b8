"""Properties of unit_convert (chatapi.tools.data), called as the tool registry calls it: a
round trip a -> b -> a gives the value back, and units of different kinds are refused with the
tool's error (422, naming to_unit)."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatapi.errors import ValidationFailed
from chatapi.tools.data import unit_convert

PROPERTY = settings(derandomize=True, deadline=None, max_examples=500)

KINDS = {
    "length": ["m", "km", "cm", "mm", "mile", "ft", "inch", "yard", "nautical_mile"],
    "mass": ["kg", "g", "mg", "lb", "oz", "tonne"],
    "time": ["s", "ms", "min", "h", "day", "week"],
    "temperature": ["degC", "degF", "kelvin", "°C", "℉"],
    "energy": ["J", "kJ", "kWh", "cal", "kcal", "eV"],
    "pressure": ["Pa", "kPa", "bar", "psi", "atm", "mmHg"],
    "volume": ["L", "mL", "gallon", "m**3", "cm^3"],
    "speed": ["m/s", "km/h", "mph", "knot"],
    "data": ["byte", "bit", "KiB", "MB", "GiB"],
}
VALUES = (st.integers(-10 ** 6, 10 ** 6)
          | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
          | st.floats(1e-6, 1e6))


def convert(value, from_unit, to_unit):
    return unit_convert({"value": value, "from_unit": from_unit, "to_unit": to_unit}, None)


@st.composite
def same_kind(draw):
    units = KINDS[draw(st.sampled_from(sorted(KINDS)))]
    return draw(st.sampled_from(units)), draw(st.sampled_from(units))


@PROPERTY
@given(VALUES, same_kind())
def test_a_round_trip_gives_the_value_back(value, units):
    there = convert(value, *units)["result"]
    back = convert(there, *reversed(units))["result"]
    assert math.isclose(back, value, rel_tol=1e-9, abs_tol=1e-9)


@PROPERTY
@given(VALUES, same_kind())
def test_converting_to_the_same_unit_changes_nothing(value, units):
    assert math.isclose(convert(value, units[0], units[0])["result"], value,
                        rel_tol=1e-12, abs_tol=1e-12)


@st.composite
def different_kinds(draw):
    first, second = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=2, max_size=2,
                                  unique=True))
    return draw(st.sampled_from(KINDS[first])), draw(st.sampled_from(KINDS[second]))


@PROPERTY
@given(VALUES, different_kinds())
def test_units_of_different_kinds_are_refused_with_the_tools_error(value, units):
    with pytest.raises(ValidationFailed) as refused:
        convert(value, *units)
    assert refused.value.status == 422
    assert list(refused.value.details) == ["to_unit"]
