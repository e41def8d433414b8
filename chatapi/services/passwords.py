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
# time as a wrong password and timing does not reveal which accounts exist. Written out, not
# hashed at import, where it cost every process that imports the app (each worker, compute
# process and `flask` command) an argon2 hash; a test checks it has the hasher's parameters.
UNKNOWN_USER_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$0A4sAWFYyNi7o2jkAA7f9Q"
                     "$aWnzB00FlgcrdO8js7TccGD+1Yxw/XOe5ZO4Vo17xlg")


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
    matches = off_event_loop(_matches, password_hash or UNKNOWN_USER_HASH, password)
    return matches and bool(password_hash)


def needs_rehash(password_hash):
    return hasher.check_needs_rehash(password_hash)
