"""Password hashing with argon2id (argon2-cffi's defaults: t=3, m=64 MiB, p=4).

A hash costs ~0.1 s of CPU. Under gunicorn's gevent worker that would freeze every other
request and stream of the worker, so the work runs in gevent's native thread pool (argon2
releases the GIL) while the event loop goes on."""
import gevent
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from gevent import monkey

hasher = PasswordHasher()

# Verified against when the account does not exist, so an unknown username costs the same
# time as a wrong password and timing does not reveal which accounts exist.
_UNKNOWN_USER_HASH = hasher.hash("no account has this password")


def off_event_loop(function, *args):
    if monkey.is_module_patched("socket"):
        return gevent.get_hub().threadpool.apply(function, args)
    return function(*args)


def hash_password(password):
    return off_event_loop(hasher.hash, password)


def _matches(password_hash, password):
    # Caught here, inside the pool's thread: gevent's pool would print the traceback of an
    # exception that crosses back to the caller, and a wrong password is no error.
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_password(password_hash, password):
    matches = off_event_loop(_matches, password_hash or _UNKNOWN_USER_HASH, password)
    return matches and bool(password_hash)


def needs_rehash(password_hash):
    return hasher.check_needs_rehash(password_hash)
