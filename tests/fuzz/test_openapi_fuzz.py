"""Schemathesis against /api/openapi.json, in-process over WSGI, as a real user: every
operation, bounded and seeded examples; no 5xx, and every answer as documented (status code,
content type, body schema).

Generated path ids almost never name a row, so a drawn share of cases uses real ones instead
(the fuzzing user's conversation and message, the tools that stay on loopback), and message
content may carry a GLM simulator marker, so answers, tool calls and provider failures are
fuzzed too.
Not fuzzed: the tools that would reach the network (fetch_webpage, extract_links: generated
URLs may be public hosts; only loopback traffic is allowed in tests) and run_python (each
example would start a sandboxed interpreter, seconds per case); they have tests of their own.
"""
from collections import Counter, defaultdict

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import Conversation, Message, User
from chatapi.models.user import username_key
from chatapi.services import passwords, tokens
from chatapi.tools import default_registry

from ..conftest import JWT_TEST_SECRET, bearer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES_PER_OPERATION = 30
CONFIG = {
    "seed": 20261125,
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True,
                   "database": "none"},
}
LOOPBACK_TOOLS = ("calculator", "unit_convert", "json_query", "csv_analyze", "regex_test",
                  "web_search", "current_weather", "weather_forecast")
# Nothing listens on the discard port: weather tools fail fast (502), on loopback.
NOWHERE = "http://127.0.0.1:9"
UPSTREAM_DOWN = ("current_weather", "weather_forecast")
SIMULATOR_BEHAVIOURS = (
    "[[echo]]", "[[think:2]]", "[[finish:length]]",
    '[[tool:calculator {"expression": "2**10 / 3"}]]',
    '[[tool:unit_convert {"value": 1, "from_unit": "mile", "to_unit": "km"}]]',
    '[[tool:json_query {"data": {"a": [1, 2]}, "expression": "a[1]"}]]',
    "[[bad_args:calculator]]", "[[tool:no_such_tool {}]]")
# The provider failing: the answer is 502/503/504 with the envelope (docs/API.md §4), or on the
# stream an `error` event.
PROVIDER_FAILURES = ("[[finish:sensitive]]", "[[no_finish]]", "[[http:500]]", "[[http:429]]",
                     "[[http:401]]", "[[stream_error:1]]", "[[drop:1]]")
UPSTREAM_STATUSES = (502, 503, 504)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(), lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# Strings a tool can work with, tried before arbitrary text.
PLAUSIBLE = {
    "expression": ["1+2*3", "sqrt(2)/3", "2**100", "1/0", "a[0]", "length(a)", "[?@ > `1`]"],
    "from_unit": ["m", "mile", "degC", "kg", "kWh"], "to_unit": ["km", "ft", "degF", "lb", "J"],
    "csv": ["a,b\n1,2\n3,x\n", "city;t\nA;1\nB;2\n"], "group_by": ["a", "city"],
    "pattern": ["a+", "(\\d+)", "[", "(a*)*b"], "text": ["aaa 123", ""],
    "query": ["flask", "天气"], "city": ["Paris", ""], "units": ["metric", "imperial"],
}
TYPED = {"string": st.text(), "integer": st.integers(), "boolean": st.booleans(),
         "number": st.integers() | st.floats(allow_nan=False, allow_infinity=False)}

# Two cases in three, and True first: Hypothesis's simplest draw (booleans start at False).
OFTEN = st.sampled_from([True, True, False])

cases_run = defaultdict(Counter)  # operation -> status code -> cases


def openapi_document():
    """The document does not depend on the database: an app on an unopened in-memory SQLite
    serves it."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "JWT_SECRET_KEY": JWT_TEST_SECRET})
    return app.test_client().get("/api/openapi.json").json


DOCUMENT = openapi_document()
# Valid and invalid requests (schemathesis's negative mode also drops the token, for 401s).
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict(CONFIG))
# Valid requests only, for the cases aimed at real rows.
valid_requests = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict(
    {**CONFIG, "generation": {**CONFIG["generation"], "mode": "positive"}}))


def arguments_for(tool):
    """Objects with the tool's own argument names, the required ones always there: mostly
    well-typed values, sometimes any JSON."""
    properties = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", ()))

    def value(name, spec):
        plausible = st.sampled_from(PLAUSIBLE[name]) if name in PLAUSIBLE else st.nothing()
        return plausible | TYPED.get(spec.get("type"), JSON_VALUES) | JSON_VALUES

    return st.fixed_dictionaries(
        {name: value(name, spec) for name, spec in properties.items() if name in required},
        optional={name: value(name, spec) for name, spec in properties.items()
                  if name not in required})


TOOL_ARGUMENTS = {tool.name: arguments_for(tool) for tool in default_registry().tools.values()
                  if tool.name in LOOPBACK_TOOLS}


@pytest.fixture
def fuzzed_app(make_app, glm_simulator):
    return make_app(GLM_BASE_URL=glm_simulator.base_url, ZHIPUAI_API_KEY="fuzz.key",
                    OPEN_METEO_BASE_URL=NOWHERE, OPEN_METEO_GEOCODING_URL=NOWHERE,
                    WEATHER_TIMEOUT=2, WEB_SEARCH_TIMEOUT=5, GLM_READ_TIMEOUT=10,
                    # Cases must reach the code behind the per-user and per-address limits
                    # (tests/security/test_api4_user_limits.py tests the limits themselves).
                    REGISTER_LIMIT=None, MESSAGE_RATE_LIMIT=None, TOOL_RATE_LIMIT=None,
                    IMPORT_RATE_LIMIT=None, SEARCH_RATE_LIMIT=None)


class Fuzzer:
    """The user whose token every case carries, and rows of theirs for cases to name."""

    def __init__(self, app):
        self.app = app
        with app.app_context():
            self.user = User(username="fuzzer", username_key=username_key("fuzzer"),
                             email="fuzzer@example.com",
                             password_hash=passwords.hash_password("fuzzing password"))
            db.session.add(self.user)
            db.session.flush()
            conversation = Conversation(user_id=self.user.id, model="glm-5")
            db.session.add(conversation)
            db.session.flush()
            message = Message(conversation_id=conversation.id, role="user", content="hi",
                              status="completed", tool_calls=[])
            db.session.add(message)
            db.session.flush()
            conversation.message_count = 1
            conversation.current_message_id = message.id
            db.session.commit()
            self.ids = {"conversation_id": conversation.id, "message_id": message.id}
            self.tokens = tokens.issue_tokens(self.user, app.config)

    def headers_for(self, case):
        """Logout revokes the token it carries: it gets a fresh one per case, so every case
        logs out a live token. Refresh takes the refresh token."""
        if case.operation.path == "/api/auth/logout":
            with self.app.app_context():
                return bearer(tokens.issue_tokens(self.user, self.app.config)["access_token"])
        if case.operation.path == "/api/auth/refresh":
            return bearer(self.tokens["refresh_token"])
        return bearer(self.tokens["access_token"])

    def aim(self, case, draw):
        """Point a drawn share of cases at real rows and tools, and at simulator behaviours.
        True when the provider was told to fail, or the tool's upstream is down."""
        parameters = case.path_parameters or {}
        for name in ("conversation_id", "message_id"):
            if name in parameters and draw(OFTEN, label=f"real {name}"):
                parameters[name] = self.ids[name]
        if "name" in parameters and draw(OFTEN, label="a real tool"):
            parameters["name"] = draw(st.sampled_from(LOOPBACK_TOOLS), label="tool")
            if case.operation.method.upper() == "POST":
                case.body = draw(TOOL_ARGUMENTS[parameters["name"]], label="arguments")
                return parameters["name"] in UPSTREAM_DOWN
        if isinstance(case.body, dict) and "conversation_id" in case.body:
            if draw(OFTEN, label="real conversation"):
                case.body["conversation_id"] = self.ids["conversation_id"]
            if isinstance(case.body.get("content"), str) and draw(OFTEN, label="mark"):
                marker = draw(st.sampled_from(SIMULATOR_BEHAVIOURS + PROVIDER_FAILURES),
                              label="marker")
                case.body["content"] += marker
                return marker in PROVIDER_FAILURES
        return False


@pytest.fixture
def fuzzer(fuzzed_app):
    return Fuzzer(fuzzed_app)


def run(case, app, fuzzer, provider_fails=False):
    checks = [check for check in CHECKS if not (provider_fails and check is not_a_server_error)]
    response = case.call_and_validate(app=app, headers=fuzzer.headers_for(case), checks=checks)
    if provider_fails:
        assert response.status_code < 500 or response.status_code in UPSTREAM_STATUSES
    cases_run[case.operation.label][response.status_code] += 1


# One app and one user serve every example of an operation, on purpose: rows made by earlier
# examples (a registered name, a created conversation) are part of what is fuzzed.
SHARED_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow])


@schema.parametrize()
@SHARED_FIXTURES
def test_every_operation_answers_as_documented(case, fuzzed_app, fuzzer):
    """Schemathesis's own phases: the documented examples, boundary and wrong-type values
    (coverage), then generated ones."""
    run(case, fuzzed_app, fuzzer)


@valid_requests.parametrize()
@valid_requests.given(data=st.data())
@SHARED_FIXTURES
def test_every_operation_answers_as_documented_on_real_rows(case, data, fuzzed_app, fuzzer):
    """Generated valid requests, a drawn share of them aimed at real rows, tools and simulator
    behaviours (schemathesis runs no coverage phase with `given`)."""
    run(case, fuzzed_app, fuzzer, provider_fails=fuzzer.aim(case, data.draw))
