"""Schema.dump compiled once per schema instance into a plain loop.

marshmallow dumps each value through five calls (serialize, get_value, the accessor, the
key look-up, _serialize): a page of 20 conversations was 300 of them and two thirds of the
request's CPU. The compiled dumper gives what marshmallow's own dump gives (tests/
test_dumping.py compares the two over every output schema): values that already have the
field's type pass through as they are, anything else goes through the field's own
_serialize, and field kinds not listed here through marshmallow's whole path."""
from functools import partial

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import get_value

# Field classes whose _serialize returns a value of this type unchanged (None included).
PASSING_TYPES = {fields.String: str, fields.Integer: int, fields.Float: float,
                 fields.Boolean: bool}


def compile_dumper(schema):
    """dump(obj, many) as `schema.dump` would, or None when the schema needs marshmallow's
    own (dump hooks or its own accessor)."""
    if (schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]
            or type(schema).get_attribute is not Schema.get_attribute):
        return None
    plan = [field_step(name, field) for name, field in schema.dump_fields.items()]

    def dump_one(obj):
        if isinstance(obj, dict):
            read = obj.get
        elif hasattr(type(obj), "__getitem__"):
            # Read as marshmallow reads it: [key] first, then the attribute (a Row, say).
            return schema._serialize(obj)
        else:
            read = partial(getattr, obj)
        out = {}
        for key, source, default, passing, convert, whole in plan:
            if whole is not None:
                value = whole(obj)
                if value is missing:
                    continue
            else:
                value = read(source, missing)
                if value is missing:
                    value = default() if callable(default) else default
                    if value is missing:
                        continue
                # The common case, a value of the field's own type, costs no call.
                if convert is not None and value is not None and type(value) is not passing:
                    value = convert(value)
            out[key] = value
        return out

    def dump(obj, many):
        if many and obj is not None:
            return [dump_one(item) for item in obj]
        return dump_one(obj)

    return dump


def field_step(name, field):
    """(output key, attribute, dump default, the type that passes unchanged, converter for
    other values (None: every value passes), whole) for one field; `whole` (the field's own
    serialize, given the object) is set for what the loop cannot shortcut."""
    key = field.data_key if field.data_key is not None else name
    source = field.attribute if field.attribute is not None else name
    convert = converter(field)
    if convert is None or "." in source or not field._CHECK_ATTRIBUTE:
        return key, source, missing, None, None, (
            lambda obj: field.serialize(name, obj, accessor=get_value))
    if type(field) is fields.Raw:
        convert = None
    return key, source, field.dump_default, PASSING_TYPES.get(type(field)), convert, None


def converter(field):
    """value -> what field._serialize gives, for the field kinds output schemas use; None for
    any other."""
    kind = type(field)
    if kind in PASSING_TYPES and not getattr(field, "as_string", False):
        passing = PASSING_TYPES[kind]
        return lambda value: (value if value is None or type(value) is passing
                              else field._serialize(value, None, None))
    if kind is fields.Raw:
        return lambda value: value
    if kind is fields.Nested:
        nested, many = field.schema, field.many
        return lambda value: None if value is None else nested.dump(value, many=many)
    if kind is fields.List:
        inner = converter(field.inner)
        if inner is None:
            return None
        return lambda value: None if value is None else [inner(item) for item in value]
    if getattr(kind, "compiled_dump", False):
        return lambda value: field._serialize(value, None, None)
    return None
