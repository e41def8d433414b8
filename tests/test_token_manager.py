"""chatapi/token_manager.py: a request's token is verified in one PyJWT parse (flask-jwt-extended
adds one more, of the header, after it), and its claims are still checked as sent. Counted
through PyJWT's own parse, so that a flask-jwt-extended that no longer decodes through the
overridden method (three parses of its own) fails here. tests/security/test_api2_authentication.py
tries the refusals of every kind of token."""
import base64

import jwt as pyjwt
import pytest

from chatapi.extensions import jwt as manager
from chatapi.texts import DEFAULT_LANGUAGE, say
from chatapi.token_manager import OneParseJWTManager

from .conftest import JWT_TEST_SECRET, bearer

EXPIRED = say("token_expired", DEFAULT_LANGUAGE)
INVALID = say("unauthorized", DEFAULT_LANGUAGE)


@pytest.fixture
def parses(monkeypatch):
    counted = []
    load = pyjwt.api_jws.PyJWS._load

    def counting_load(self, jwt_token):
        counted.append(jwt_token)
        return load(self, jwt_token)

    monkeypatch.setattr(pyjwt.api_jws.PyJWS, "_load", counting_load)
    return counted


def test_a_request_parses_its_token_twice_not_four_times(client, auth_headers, parses):
    assert isinstance(manager, OneParseJWTManager)
    response = client.get("/api/conversations/", headers=auth_headers)
    assert response.status_code == 200
    assert len(parses) == 2


def claims_of(client, auth_headers):
    token = auth_headers["Authorization"].removeprefix("Bearer ")
    return pyjwt.decode(token, JWT_TEST_SECRET, algorithms=["HS256"])


@pytest.mark.parametrize("change", [
    {"type": None}, {"jti": None}, {"jti": "x" * 65}, {"sub": "01"}, {"token_key": None},
    {"iat": [1]}, {"exp": "soon"}, {"iat": float("inf")}, {"exp": float("inf")}])
def test_a_validly_signed_token_shaped_otherwise_than_issued_is_401(client, auth_headers,
                                                                    change):
    """Checked on the claims as sent: flask-jwt-extended would fill in a missing `type` as
    "access" and a missing `jti` as None; PyJWT lets a TypeError or an OverflowError through
    for an `iat` or `exp` it cannot read (null, a list, Infinity)."""
    claims = claims_of(client, auth_headers)
    for name, value in change.items():
        if value is None:
            del claims[name]
        else:
            claims[name] = value
    forged = pyjwt.encode(claims, JWT_TEST_SECRET, algorithm="HS256")
    response = client.get("/api/conversations/", headers=bearer(forged))
    assert (response.status_code, response.json["message"]) == (401, INVALID)


def test_an_expired_token_shaped_otherwise_is_invalid_and_one_shaped_right_expired(
        client, auth_headers):
    claims = claims_of(client, auth_headers)
    claims["exp"] = claims["iat"] = 1_000_000
    claims["nbf"] = 1_000_000
    expired = pyjwt.encode(claims, JWT_TEST_SECRET, algorithm="HS256")
    response = client.get("/api/conversations/", headers=bearer(expired))
    assert (response.status_code, response.json["message"]) == (401, EXPIRED)
    del claims["type"]
    malformed = pyjwt.encode(claims, JWT_TEST_SECRET, algorithm="HS256")
    response = client.get("/api/conversations/", headers=bearer(malformed))
    assert (response.status_code, response.json["message"]) == (401, INVALID)


def test_a_header_nested_past_the_parsers_depth_is_401_and_422_at_logout(client, auth_headers):
    """Anyone can send one: PyJWT parses the header before it checks the signature."""
    header = '{"alg":"HS256","x":' + "[" * 1000 + "]" * 1000 + "}"
    nested = base64.urlsafe_b64encode(header.encode()).rstrip(b"=").decode() + ".e30.AAAA"
    response = client.get("/api/conversations/", headers=bearer(nested))
    assert (response.status_code, response.json["message"]) == (401, INVALID)
    response = client.post("/api/auth/logout", headers=auth_headers,
                           json={"refresh_token": nested})
    assert response.status_code == 422
    assert "refresh_token" in response.json["error"]["details"]
