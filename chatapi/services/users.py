"""Accounts: creation, authentication, administration."""
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, Forbidden, NotFound, Unauthorized
from ..extensions import db
from ..models import User
from ..models.user import username_key
from ..texts import say
from . import passwords


def _conflicts(username, email):
    taken = db.session.execute(
        select(User.username_key, User.email).where(
            or_(User.username_key == username_key(username), User.email == email))
    ).all()
    details = {}
    for key, taken_email in taken:
        if key == username_key(username):
            details["username"] = [say("username_taken")]
        if taken_email == email:
            details["email"] = [say("email_taken")]
    return details


def create_user(username, email, password, role="user"):
    email = email.lower()
    details = _conflicts(username, email)
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
        details = _conflicts(username, email) or {"username": [say("username_taken")]}
        raise Conflict(_conflict_text(details), details=details) from None
    return user


def _conflict_text(details):
    return "username_taken" if "username" in details else "email_taken"


def find_by_login(login):
    """`login` is a username (any letter case) or the account's email address."""
    if "@" in login:
        return db.session.scalar(select(User).where(User.email == login.lower()))
    return db.session.scalar(select(User).where(User.username_key == username_key(login)))


def authenticate(login, password):
    user = find_by_login(login)
    if not passwords.verify_password(user.password_hash if user else None, password):
        raise Unauthorized("invalid_credentials")
    if not user.is_active:
        raise Forbidden("account_inactive")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        db.session.commit()
    return user


def log_in(login, password, client_address, limiter, limit):
    """Failed attempts are counted per client address and claimed name, so one attacker can't
    lock a user out from everywhere and one address can't try a name without limit."""
    if limit is None:
        return authenticate(login, password)
    key = (client_address or "unknown", login.casefold())
    limiter.ensure_allowed(limit, *key)
    try:
        return authenticate(login, password)
    except Unauthorized:
        limiter.count(limit, *key)
        raise


def get_active_user(user_id):
    user = db.session.get(User, user_id)
    return user if user is not None and user.is_active else None


def get_by_username(username):
    user = db.session.scalar(select(User).where(User.username_key == username_key(username)))
    if user is None:
        raise NotFound()
    return user


def list_users():
    return db.session.scalars(select(User).order_by(User.id)).all()


def set_password(user, password):
    user.password_hash = passwords.hash_password(password)
    db.session.commit()


def set_active(user, active):
    user.is_active = active
    db.session.commit()


def delete_user(user):
    db.session.delete(user)
    db.session.commit()
