"""Accounts: creation, authentication, administration."""
from functools import cache

from sqlalchemy import bindparam, literal, or_, select
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from ..extensions import db
from ..models import User
from ..models.user import new_token_key, username_key
from ..texts import say
from . import passwords


def _conflicts(username, email, language):
    taken = db.session.execute(
        select(User.username_key, User.email).where(
            or_(User.username_key == username_key(username), User.email == email))
    ).all()
    details = {}
    for key, taken_email in taken:
        if key == username_key(username):
            details["username"] = [say("username_taken", language)]
        if taken_email == email:
            details["email"] = [say("email_taken", language)]
    return details


def create_user(username, email, password, role="user", *, language):
    """A name or address already taken is a 409 whose details are written in `language`."""
    email = email.lower()
    details = _conflicts(username, email, language)
    if details:
        raise Conflict(_conflict_text(details), details=details)
    user = User(username=username, username_key=username_key(username), email=email,
                password_hash=passwords.hash_password(password), role=role)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        # Lost a race with a concurrent registration of the same name or address.
        db.session.rollback()
        details = (_conflicts(username, email, language)
                   or {"username": [say("username_taken", language)]})
        raise Conflict(_conflict_text(details), details=details) from None
    return user


def _conflict_text(details):
    return "username_taken" if "username" in details else "email_taken"


def find_by_login(login):
    """`login` is a username (any letter case) or the account's email address."""
    if "@" in login:
        return db.session.scalar(select(User).where(User.email == login.lower()))
    return db.session.scalar(select(User).where(User.username_key == username_key(login)))


def authenticate(user, password):
    """`user` as found by its login, or None: an unknown login costs the same hash check."""
    if not passwords.verify_password(user.password_hash if user else None, password):
        raise Unauthorized("invalid_credentials")
    if not user.is_active:
        raise Forbidden("account_inactive")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    return user


def throttle_key(login, user):
    """Every spelling that logs in to one account counts as that account: its username in any
    letter case or Unicode compatibility form (`ａｌｉｃｅ`), and its email. An unknown name
    counts in the form it is looked up in."""
    if user is not None:
        return f"account:{user.id}"
    return "name:" + (login.lower() if "@" in login else username_key(login))


def log_in(login, password, client_address, limiter, per_account, per_address):
    """Failed attempts are counted per client address and claimed account, so one attacker
    can't lock a user out from everywhere and one address can't try an account without
    limit; and per address over all names, so cycling through names (an argon2 check each)
    can't burn the CPU without limit either."""
    user = find_by_login(login)
    windows = failure_windows(throttle_key(login, user), client_address, per_account,
                              per_address)
    return counting_failures(windows, limiter, lambda: authenticate(user, password))


def confirm_password(user, password, client_address, limiter, per_account, per_address):
    """A signed-in user's password, asked again before a change to the account: a wrong one
    counts as a failed login of the account from that address (a stolen token must not
    become a way to guess the password without limit)."""
    windows = failure_windows(throttle_key(None, user), client_address, per_account,
                              per_address)

    def check():
        if not passwords.verify_password(user.password_hash, password):
            raise Unauthorized("wrong_password")
    counting_failures(windows, limiter, check)


def failure_windows(account_key, client_address, per_account, per_address):
    address = client_address or "unknown"
    windows = []
    if per_account:
        windows.append((per_account, (address, account_key)))
    if per_address:
        windows.append((per_address, ("address", address)))
    return windows


def counting_failures(windows, limiter, check):
    """`check()`'s result, refused (429) while a window is full; a 401 it raises counts in
    every window."""
    for limit, key in windows:
        limiter.ensure_allowed(limit, *key)
    try:
        return check()
    except Unauthorized:
        for limit, key in windows:
            limiter.count(limit, *key)
        raise


def register(fields, client_address, limiter, limit, language):
    """Registrations are counted per client address: each costs a password hash and a row."""
    if limit:
        limiter.take(limit, "register", client_address or "unknown")
    return create_user(**fields, language=language)


# The account's row is joined to this one row, so that the query answers even when no
# account has the id (the token may still be revoked: that is said first).
ONE_ROW = select(literal(1).label("one")).subquery("one_row")


def token_caller(user_id, token_key, revoked, values):
    """(the active account a token names or None, whether the token is revoked), in one
    query; `revoked` is the revocation store's SQL condition, `values` what it binds. The
    token must carry the account's current key (an id alone could name a later account, and
    the key changes with the password and on deactivation). The account is its row, read
    through the connection (every request asks, and the ORM's handling of an object cost as
    much as the query): `account()` gives the object to change it."""
    row = db.session.connection().execute(caller_query(revoked),
                                          {"user_id": user_id, **values}).one()
    user = row if row.id is not None and row.is_active and row.token_key == token_key else None
    return user, bool(row.revoked)


@cache
def caller_query(revoked):
    """Built once per revocation store: every request runs it, and building it cost more CPU
    than running it."""
    return (select(revoked.label("revoked"), *User.__table__.columns).select_from(ONE_ROW)
            .outerjoin(User, User.id == bindparam("user_id")))


def account(caller):
    """The caller's account as an object of the session, to change it."""
    user = db.session.get(User, caller.id)
    if user is None:
        raise NotFound()
    return user


def get_by_username(username):
    user = db.session.scalar(select(User).where(User.username_key == username_key(username)))
    if user is None:
        raise NotFound()
    return user


def list_users():
    return db.session.scalars(select(User).order_by(User.id)).all()


def set_password(user, password):
    """Every token of the account ends: whoever held one must log in with the new password."""
    user.password_hash = passwords.hash_password(password)
    user.token_key = new_token_key()
    db.session.commit()


def change_password(user, current_password, new_password, language):
    """The caller's own change (current_password already confirmed): a new password that is
    the current one is a 422, since it would end every session and change nothing."""
    if new_password == current_password:
        raise ValidationFailed(details={"new_password": [say("password_unchanged", language)]})
    set_password(user, new_password)


def set_active(user, active):
    """Deactivating ends every token of the account for good: reactivating does not bring
    them back."""
    user.is_active = active
    if not active:
        user.token_key = new_token_key()
    db.session.commit()


def set_token_quota(user, quota):
    """The account's own token quota: a Quota, `none` (no quota) or None (TOKEN_QUOTA's)."""
    user.token_quota = None if quota is None else str(quota)
    db.session.commit()
