"""Password hashing with argon2id (argon2-cffi's defaults: t=3, m=64 MiB, p=4)."""
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

hasher = PasswordHasher()

# Verified against when the account does not exist, so an unknown username costs the same
# time as a wrong password and timing does not reveal which accounts exist.
_UNKNOWN_USER_HASH = hasher.hash("no account has this password")


def hash_password(password):
    return hasher.hash(password)


def verify_password(password_hash, password):
    try:
        return hasher.verify(password_hash or _UNKNOWN_USER_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash):
    return hasher.check_needs_rehash(password_hash)
