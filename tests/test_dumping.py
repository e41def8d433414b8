"""The compiled dump (chatapi/schemas/dumping.py) gives exactly what marshmallow's own dump
gives: over every schema the API answers with, for stored rows, plain rows, dicts, objects
that lack attributes and values of another type than the field's."""
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from marshmallow import Schema
from sqlalchemy import select

import chatapi.schemas  # noqa: F401  (the package holds every schema module)
from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.schemas.base import BaseSchema, OutputSchema
from chatapi.schemas.conversations import ConversationPageSchema, ConversationSchema
from chatapi.schemas.envelope import envelope
from chatapi.schemas.messages import ExchangeSchema, MessagePageSchema, MessageSchema
from chatapi.services import conversations, messages

from .test_chat import send


def every_subclass(base):
    for subclass in base.__subclasses__():
        yield subclass
        yield from every_subclass(subclass)


def both(schema, value, many=None):
    compiled = schema.dump(value, many=many)
    reference = Schema.dump(schema, value, many=many)
    assert compiled == reference
    assert [type(compiled)] == [type(reference)]
    return compiled


def output_schemas():
    import_all_schema_modules()
    return sorted({schema for schema in every_subclass(OutputSchema)}, key=lambda s: s.__name__)


def import_all_schema_modules():
    import importlib
    import pkgutil
    for module in pkgutil.iter_modules(chatapi.schemas.__path__):
        importlib.import_module(f"chatapi.schemas.{module.name}")


ODD_VALUES = [None, 0, 1, 2.5, "7", "text", True, False, [], {},
              datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)]


@pytest.mark.parametrize("schema_class", output_schemas(), ids=lambda s: s.__name__)
def test_every_output_schema_dumps_as_marshmallow_does(schema_class):
    schema = schema_class()
    both(schema, SimpleNamespace())
    # A key missing from a dict is left out, as a missing attribute is (marshmallow itself
    # would dump the dict's method of that name: `items`, say).
    assert schema.dump({}) == Schema.dump(schema, SimpleNamespace())
    for value in ODD_VALUES:
        attributes = {name: value for name in schema.fields}
        try:
            reference = Schema.dump(schema, SimpleNamespace(**attributes))
        except (TypeError, ValueError, AttributeError):
            # marshmallow itself refuses the value: so must the compiled dump.
            with pytest.raises((TypeError, ValueError, AttributeError)):
                schema.dump(SimpleNamespace(**attributes))
            continue
        assert schema.dump(SimpleNamespace(**attributes)) == reference
        assert schema.dump(attributes) == Schema.dump(schema, attributes)


def test_stored_conversations_and_messages_dump_as_marshmallow_does(chat, auth_headers, user):
    conversation_id = chat.post("/api/conversations/", json={"title": "t", "pinned": True},
                                headers=auth_headers).get_json()["data"]["id"]
    send(chat, auth_headers, conversation_id, "[[reply:first]] hello")
    send(chat, auth_headers, conversation_id, "[[tool:calculator {\"expression\": \"2+3\"}]] sum")
    conversation = db.session.get(Conversation, conversation_id)
    stored = db.session.scalars(select(Message)).all()
    assert len(stored) >= 4
    both(ConversationSchema(), conversation)
    both(MessageSchema(), stored, many=True)
    both(envelope(ConversationSchema)(), {"data": conversation, "message": "m"})
    both(envelope(ExchangeSchema)(), {"data": {"user_message": stored[0],
                                               "assistant_message": stored[1]}})
    page = messages.list_page(user.id, conversation_id, limit=100)
    both(envelope(MessagePageSchema)(), {"data": page})
    listing = conversations.list_page(user.id, page=1, page_size=20)
    both(envelope(ConversationPageSchema)(), {"data": listing})
    # A plain row of the table, read as marshmallow reads it ([key], then the attribute).
    row = db.session.execute(select(*Conversation.__table__.columns)).first()
    both(ConversationSchema(), row)


def test_many_and_none_dump_as_marshmallow_does():
    schema = MessageSchema()
    both(schema, None)
    both(schema, [], many=True)
    both(schema, None, many=True)
    both(envelope()(), {"message": "done"})
    assert issubclass(envelope(MessageSchema), BaseSchema)
