"""Extension objects, unbound: the factory binds them to an app."""
from flask import current_app, json
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from .schemas.envelope import ErrorEnvelopeSchema
from .sessions import RequestSession
from .token_manager import OneParseJWTManager


class Base(DeclarativeBase):
    # Named constraints, so migrations refer to the same names on SQLite and PostgreSQL.
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


class EnvelopedApi(Api):
    """flask-smorest without its own error format: errors.py renders every error."""

    ERROR_SCHEMA = ErrorEnvelopeSchema
    # No catch-all `default` response: each operation lists the error statuses it can answer
    # (chatapi.api.blueprint.Blueprint).
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self):
        pass

    def init_app(self, app, **kwargs):
        super().init_app(app, **kwargs)
        app.extensions["chatapi.openapi"] = self.spec

    def _openapi_json(self):
        """One Api object is bound to every app a process makes (tests make many), and keeps
        the document of the last one: each app serves the document built for it."""
        document = current_app.extensions["chatapi.openapi"].to_dict()
        return current_app.response_class(json.dumps(document, indent=2, sort_keys=False),
                                          mimetype="application/json")


# Objects keep their values after commit: a view dumps what it just wrote without a second
# SELECT per object.
db = SQLAlchemy(model_class=Base,
                session_options={"expire_on_commit": False, "class_": RequestSession})
migrate = Migrate()
jwt = OneParseJWTManager()
api = EnvelopedApi()
