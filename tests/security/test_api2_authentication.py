"""OWASP API2:2023 Broken Authentication.

Every route of the URL map except `PUBLIC` must refuse, with the 401 envelope, each kind of
bad credential: none, not a JWT, unsigned (`alg: none`), signed with another key or another
algorithm, tampered, expired, not yet valid, a refresh token where an access token belongs (and
the reverse), revoked by logout, of a deleted or a deactivated account (even once
reactivated) or of one whose password was set since (every token carries its account's key,
which changes then; ids are never reused either), lacking a claim the service issues (`exp`,
`jti`, `type`, ...) or with one of a type it never issues. Each forged kind has a control: the
same construction with the real key and claims is accepted, so the refusals are the server's
doing. Passwords never come back; a failed login says the same, and takes about as long, for an
unknown user and a wrong password; repeated failures are throttled, whatever spelling of the
account or forwarded address is sent. tests/test_auth.py and tests/test_errors.py test the same
endpoints for their everyday behaviour."""
import base64
import json
import statistics
import time
import uuid

import jwt as pyjwt
import pytest
from sqlalchemy import select

from chatapi.apidocs import BLUEPRINT as DOCS_PAGES
from chatapi.extensions import db
from chatapi.web import BLUEPRINT as WEB_CLIENT
from chatapi.models import User
from chatapi.services import tokens

from ..conftest import JWT_TEST_SECRET, PASSWORD, bearer
from .conftest import assert_error, call, routes

PUBLIC = {"auth.register", "auth.login", "health.check_health", "api-docs.openapi_json"}
PATH_VALUES = {"conversation_id": "conv_aaaaaaaaaaaaaaaaaaaaaa",
               "message_id": "msg_aaaaaaaaaaaaaaaaaaaaaa", "name": "calculator"}


def is_public(route):
    """The operations above, the interactive docs' page and files, and the web client's page
    and files (no user data: the page asks for a login and keeps the token in the tab)."""
    return route.endpoint in PUBLIC or route.endpoint.startswith(
        (f"{DOCS_PAGES}.", f"{WEB_CLIENT}."))


def protected_routes(app):
    return [route for route in routes(app) if not is_public(route)]


def claims_for(user, **changes):
    now = int(time.time())
    claims = {"sub": str(user.id), "jti": uuid.uuid4().hex, "type": "access", "fresh": False,
              "iat": now, "nbf": now, "exp": now + 3600, "role": user.role,
              "token_key": user.token_key}
    claims.update(changes)
    return claims


def signed(claims, key=JWT_TEST_SECRET, algorithm="HS256"):
    return pyjwt.encode(claims, key, algorithm=algorithm)


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(claims):
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def with_payload(token, claims):
    header, _payload, signature = token.split(".")
    return f"{header}.{b64(claims)}.{signature}"


def issued(app, user):
    return tokens.issue_tokens(user, app.config)


def revoked_by_logout(app, client, runner, user):
    access = issued(app, user)["access_token"]
    assert client.post("/api/auth/logout", headers=bearer(access)).status_code == 200
    return bearer(access)


def of_deactivated_account(app, client, runner, user):
    access = issued(app, user)["access_token"]
    assert runner.invoke(args=["users", "deactivate", user.username]).exit_code == 0
    return bearer(access)


def of_deleted_account(app, client, runner, user):
    access = issued(app, user)["access_token"]
    assert runner.invoke(args=["users", "delete", user.username, "--yes"]).exit_code == 0
    assert db.session.scalar(select(User).where(User.username == user.username)) is None
    return bearer(access)


def of_account_whose_password_was_set(app, client, runner, user):
    access = issued(app, user)["access_token"]
    assert runner.invoke(args=["users", "set-password", user.username, "--password-stdin"],
                         input="a brand new password\n").exit_code == 0
    return bearer(access)


def of_reactivated_account(app, client, runner, user):
    headers = of_deactivated_account(app, client, runner, user)
    assert runner.invoke(args=["users", "activate", user.username]).exit_code == 0
    return headers


BAD_CREDENTIALS = {
    "none": lambda app, user: {},
    "empty bearer": lambda app, user: {"Authorization": "Bearer "},
    "not a jwt": lambda app, user: {"Authorization": "Bearer not.a.jwt"},
    "basic scheme": lambda app, user: {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
    "token without scheme": lambda app, user: {
        "Authorization": issued(app, user)["access_token"]},
    "alg none": lambda app, user: bearer(unsigned(claims_for(user))),
    "another key": lambda app, user: bearer(signed(claims_for(user), "another-" + "k" * 40)),
    "same key, HS512": lambda app, user: bearer(
        signed(claims_for(user), algorithm="HS512")),
    "tampered payload": lambda app, user: bearer(with_payload(
        issued(app, user)["access_token"], claims_for(user, sub="999999"))),
    "expired": lambda app, user: bearer(signed(claims_for(user, exp=int(time.time()) - 10))),
    "not yet valid": lambda app, user: bearer(
        signed(claims_for(user, nbf=int(time.time()) + 600))),
}
ACCOUNT_CHANGES = {"revoked by logout": revoked_by_logout,
                   "deactivated account": of_deactivated_account,
                   "reactivated account": of_reactivated_account,
                   "password set": of_account_whose_password_was_set,
                   "deleted account": of_deleted_account}


def assert_refused_everywhere(app, client, headers, skip=()):
    checked = [route for route in protected_routes(app) if route.endpoint not in skip]
    assert len(checked) >= 12
    for route in checked:
        response = call(client, route, headers, **PATH_VALUES)
        assert_error(response, 401, "unauthorized")


def test_every_parameter_of_a_protected_route_has_a_value(app):
    for route in protected_routes(app):
        assert route.arguments <= set(PATH_VALUES), route


def test_public_routes_are_exactly_the_ones_answering_without_a_token(app, client):
    for route in routes(app):
        status = call(client, route, **PATH_VALUES).status_code
        assert (status == 401) == (not is_public(route)), (str(route), status)


def test_forged_tokens_with_the_real_key_and_claims_are_accepted(client, user):
    """The control for the forgeries below: they differ from this in one thing only."""
    assert client.get("/api/auth/me", headers=bearer(signed(claims_for(user)))).status_code == 200


@pytest.mark.parametrize("kind", BAD_CREDENTIALS)
def test_bad_credentials_are_401_on_every_protected_route(app, client, user, kind):
    assert_refused_everywhere(app, client, BAD_CREDENTIALS[kind](app, user))


@pytest.mark.parametrize("change", ACCOUNT_CHANGES)
def test_a_token_that_worked_is_401_everywhere_once_its_account_or_session_ends(
        app, client, runner, user, change):
    headers = ACCOUNT_CHANGES[change](app, client, runner, user)
    assert_refused_everywhere(app, client, headers)


@pytest.mark.parametrize("change", ACCOUNT_CHANGES)
def test_a_refresh_token_stops_working_with_its_session_or_account(
        app, client, runner, user, change):
    refresh = issued(app, user)["refresh_token"]
    assert client.post("/api/auth/refresh", headers=bearer(refresh)).status_code == 200
    if change == "revoked by logout":
        access = issued(app, user)["access_token"]
        assert client.post("/api/auth/logout", headers=bearer(access),
                           json={"refresh_token": refresh}).status_code == 200
    else:
        ACCOUNT_CHANGES[change](app, client, runner, user)
    assert_error(client.post("/api/auth/refresh", headers=bearer(refresh)), 401, "unauthorized")


def test_a_refresh_token_is_not_an_access_token(app, client, user):
    refresh = issued(app, user)["refresh_token"]
    assert_refused_everywhere(app, client, bearer(refresh), skip={"auth.refresh"})


def test_an_access_token_is_not_a_refresh_token(app, client, user, auth_headers):
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 200
    assert_error(client.post("/api/auth/refresh", headers=auth_headers), 401, "unauthorized")


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
# Each names the user only in a form this service never issues (int() reads most as its id).
SUBJECTS = {
    "int": lambda n: n, "float": lambda n: n + 0.5, "leading space": lambda n: f" {n}",
    "trailing newline": lambda n: f"{n}\n", "plus sign": lambda n: f"+{n}",
    "leading zero": lambda n: f"0{n}",
    "arabic-indic digits": lambda n: str(n).translate(ARABIC_INDIC),
    "decimal text": lambda n: f"{n}.0", "list": lambda n: [str(n)],
    "object": lambda n: {"id": str(n)}, "null": lambda n: None, "empty": lambda n: "",
    "name": lambda n: "alice", "zero": lambda n: "0", "negative": lambda n: "-1",
    "past the id column": lambda n: "2147483648", "huge": lambda n: "9" * 30,
}


@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_validly_signed_token_whose_sub_is_not_an_issued_user_id_is_401(
        app, client, user, subject):
    token = signed(claims_for(user, sub=SUBJECTS[subject](user.id)))
    for path in ("/api/auth/me", "/api/conversations/"):
        assert_error(client.get(path, headers=bearer(token)), 401, "unauthorized")


@pytest.mark.parametrize("where", ["query", "cookie"])
def test_a_token_is_only_read_from_the_authorization_header(app, client, user, where):
    token = issued(app, user)["access_token"]
    if where == "query":
        response = client.get(f"/api/auth/me?jwt={token}&access_token={token}")
    else:
        client.set_cookie("access_token_cookie", token)
        response = client.get("/api/auth/me")
    assert_error(response, 401, "unauthorized")


def test_no_response_carries_the_password_or_its_hash(client):
    password = "a-very-private-passphrase"
    bodies = [client.post("/api/auth/register", json={
        "username": "carol", "email": "carol@example.com", "password": password})]
    login = client.post("/api/auth/login", json={"username": "carol", "password": password})
    bodies.append(login)
    headers = bearer(login.get_json()["data"]["access_token"])
    refresh = bearer(login.get_json()["data"]["refresh_token"])
    bodies += [client.get("/api/auth/me", headers=headers),
               client.post("/api/auth/refresh", headers=refresh),
               client.post("/api/auth/register", json={
                   "username": "carol", "email": "carol@example.com", "password": password}),
               client.post("/api/auth/register", json={
                   "username": "x", "email": "carol@example.com", "password": password}),
               client.get("/api/openapi.json")]
    assert [response.status_code for response in bodies] == [201, 200, 200, 200, 409, 422, 200]
    stored = db.session.scalar(select(User).where(User.username == "carol")).password_hash
    assert stored.startswith("$argon2id$") and password not in stored
    for response in bodies:
        text = response.get_data(as_text=True)
        assert password not in text and stored not in text and "$argon2" not in text
        assert "password_hash" not in text


def login(client, username, password):
    return client.post("/api/auth/login", json={"username": username, "password": password})


def test_login_failures_do_not_say_whether_the_account_exists(client, make_user):
    make_user("alice")
    make_user("dora", is_active=False)
    failures = [login(client, "nobody", PASSWORD), login(client, "alice", "wrong password"),
                login(client, "nobody@example.com", PASSWORD),
                login(client, "alice@example.com", "wrong password"),
                login(client, "dora", "wrong password")]
    bodies = [assert_error(response, 401, "unauthorized") for response in failures]
    assert all(body == bodies[0] for body in bodies)
    assert set(bodies[0]["error"]["details"]) == set()


def test_an_unknown_user_costs_a_password_check_like_a_wrong_password(client, user):
    """Without the stand-in hash an unknown name answers ~100 times faster (no argon2)."""
    def seconds(username):
        started = time.perf_counter()
        assert login(client, username, "wrong password").status_code == 401
        return time.perf_counter() - started

    unknown = statistics.mean(seconds(f"nobody{n}") for n in range(2))
    wrong = statistics.mean(seconds("alice") for _ in range(2))
    assert unknown > wrong / 5, (unknown, wrong)


def test_repeated_failed_logins_are_throttled_even_for_the_right_password(make_app, user):
    client = make_app(LOGIN_FAILURE_LIMIT="3 per minute").test_client()
    assert [login(client, "alice", "wrong password").status_code for _ in range(3)] == [401] * 3
    for password in ("wrong password", PASSWORD):
        response = login(client, "alice", password)
        assert_error(response, 429, "rate_limited")
        assert int(response.headers["Retry-After"]) > 0
    forged = client.post("/api/auth/login", json={"username": "alice", "password": PASSWORD},
                         headers={"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.7"})
    assert_error(forged, 429, "rate_limited")


@pytest.mark.parametrize("variant", ["ALICE", "ａｌｉｃｅ", "𝐚𝐥𝐢𝐜𝐞", "Alice@Example.com"])
def test_the_throttle_counts_every_spelling_of_one_account_together(make_app, user, variant):
    """Usernames are compared after NFKC and case folding, so `ａｌｉｃｅ` and `𝐚𝐥𝐢𝐜𝐞` log in
    as alice: they must not open a fresh window of attempts."""
    client = make_app(LOGIN_FAILURE_LIMIT="3 per minute").test_client()
    assert login(client, variant, PASSWORD).status_code == 200
    assert [login(client, "alice", "wrong password").status_code for _ in range(3)] == [401] * 3
    for password in ("wrong password", PASSWORD):
        assert_error(login(client, variant, password), 429, "rate_limited")


def test_eves_tokens_do_not_open_the_account_registered_after_her_deletion(
        app, client, runner, make_user):
    """eve is the newest account (SQLite without AUTOINCREMENT would give her id to the next
    one); after `flask users delete eve` someone registers as eve again."""
    eve = make_user("eve")
    old = issued(app, eve)
    assert client.get("/api/auth/me", headers=bearer(old["access_token"])).status_code == 200
    assert client.post("/api/auth/refresh",
                       headers=bearer(old["refresh_token"])).status_code == 200
    assert runner.invoke(args=["users", "delete", "eve", "--yes"]).exit_code == 0
    registered = client.post("/api/auth/register", json={
        "username": "eve", "email": "eve@example.com", "password": "s3cret-pass"})
    assert registered.status_code == 201
    new_id = registered.get_json()["data"]["id"]
    assert new_id > eve.id
    mine = client.post("/api/auth/login", json={"username": "eve",
                                                "password": "s3cret-pass"}).get_json()["data"]
    headers = bearer(mine["access_token"])
    assert client.post("/api/conversations/", headers=headers, json={}).status_code == 201
    for path in ("/api/auth/me", "/api/conversations/"):
        assert_error(client.get(path, headers=bearer(old["access_token"])), 401, "unauthorized")
    assert_error(client.post("/api/auth/refresh", headers=bearer(old["refresh_token"])), 401,
                 "unauthorized")
    assert client.get("/api/auth/me", headers=headers).get_json()["data"]["id"] == new_id
    assert client.post("/api/auth/refresh",
                       headers=bearer(mine["refresh_token"])).status_code == 200


def test_a_token_naming_a_later_accounts_id_with_the_earlier_accounts_key_is_401(
        client, make_user):
    """Should an id ever name a second account, the first one's tokens still carry its key."""
    eve = make_user("eve")
    newcomer = make_user("newcomer")
    forged = signed(claims_for(eve, sub=str(newcomer.id)))
    assert_error(client.get("/api/auth/me", headers=bearer(forged)), 401, "unauthorized")
    genuine = signed(claims_for(newcomer))
    assert client.get("/api/auth/me", headers=bearer(genuine)).status_code == 200


WRONG_KEYS = {
    "another account's": lambda other: other.token_key, "random": lambda other: "A" * 22,
    "empty": lambda other: "", "with a space": lambda other: "a b",
    "too long": lambda other: "x" * 33, "a number": lambda other: 123,
    "null": lambda other: None, "a list": lambda other: ["k"]}


@pytest.mark.parametrize("token_key", WRONG_KEYS)
def test_a_validly_signed_token_without_the_accounts_current_key_is_401(
        client, user, other_user, token_key):
    token = signed(claims_for(user, token_key=WRONG_KEYS[token_key](other_user)))
    for path in ("/api/auth/me", "/api/conversations/"):
        assert_error(client.get(path, headers=bearer(token)), 401, "unauthorized")


ISSUED_CLAIMS = ("sub", "iat", "exp", "jti", "type", "token_key")


def without(claims, name):
    return {key: value for key, value in claims.items() if key != name}


@pytest.mark.parametrize("claim", ISSUED_CLAIMS)
def test_a_validly_signed_token_lacking_an_issued_claim_is_401_everywhere(
        app, client, user, claim):
    """Access-token routes (logout among them: without a `jti` it was a 500) and refresh."""
    access = signed(without(claims_for(user), claim))
    assert_refused_everywhere(app, client, bearer(access))
    assert_error(client.post("/api/auth/logout", headers=bearer(access)), 401, "unauthorized")
    refresh = signed(without(claims_for(user, type="refresh"), claim))
    assert_error(client.post("/api/auth/refresh", headers=bearer(refresh)), 401, "unauthorized")


def test_validly_signed_access_and_refresh_tokens_with_every_claim_are_accepted(client, user):
    """The control for the test above and the next one."""
    assert client.post("/api/auth/refresh", headers=bearer(
        signed(claims_for(user, type="refresh")))).status_code == 200
    assert client.post("/api/auth/logout", headers=bearer(
        signed(claims_for(user)))).status_code == 200


@pytest.mark.parametrize("claim,value", [
    ("jti", 123), ("jti", ""), ("jti", None), ("jti", "x" * 65), ("jti", "a\x00b"),
    ("jti", ["a"]), ("type", "id"), ("type", None), ("type", ["access"]),
    ("exp", str(2 ** 31)), ("exp", 2.0 ** 31), ("exp", True), ("exp", None)])
def test_a_validly_signed_token_with_a_claim_of_a_type_never_issued_is_401(
        client, user, claim, value):
    token = bearer(signed(claims_for(user, **{claim: value})))
    assert_error(client.get("/api/auth/me", headers=token), 401, "unauthorized")
    assert_error(client.post("/api/auth/logout", headers=token), 401, "unauthorized")


@pytest.mark.parametrize("claim", ["jti", "exp", "type", "token_key"])
def test_logout_naming_a_refresh_token_lacking_a_claim_is_422_and_revokes_nothing(
        client, user, auth_headers, claim):
    refresh = signed(without(claims_for(user, type="refresh"), claim))
    response = client.post("/api/auth/logout", headers=auth_headers,
                           json={"refresh_token": refresh})
    body = assert_error(response, 422, "validation_error")
    assert set(body["error"]["details"]) == {"refresh_token"}
    assert client.get("/api/auth/me", headers=auth_headers).status_code == 200


@pytest.mark.parametrize("issued_at", [None, "1700000000", 1.5e9, -10 ** 20, True])
def test_a_validly_signed_token_without_an_integer_issue_time_is_401(client, user, issued_at):
    claims = claims_for(user, iat=issued_at)
    if issued_at is None:
        del claims["iat"]
    response = client.get("/api/auth/me", headers=bearer(signed(claims)))
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize("expires", [2 ** 53, 10 ** 20])
def test_a_validly_signed_token_expiring_past_any_date_is_refused(
        client, user, auth_headers, expires):
    """Logging out with one was a 500: its expiry is no date (OverflowError, ValueError)."""
    token = bearer(signed(claims_for(user, exp=expires)))
    assert_error(client.get("/api/auth/me", headers=token), 401, "unauthorized")
    assert_error(client.post("/api/auth/logout", headers=token), 401, "unauthorized")
    refresh = signed(claims_for(user, type="refresh", exp=expires))
    response = client.post("/api/auth/logout", headers=auth_headers,
                           json={"refresh_token": refresh})
    assert_error(response, 422, "validation_error")
