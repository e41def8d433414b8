"""Accounts, conversations and messages made through the API before anything is measured."""
import asyncio
import secrets

from .http import call, connect

PASSWORD = "bench-password-123"


class SeedError(RuntimeError):
    pass


def _expect(status, envelope, wanted, what):
    if status != wanted:
        raise SeedError(f"{what}: HTTP {status} {envelope.get('message')!r}")
    return envelope.get("data")


async def new_user(port, label):
    """Register a fresh account and log in: its access token."""
    name = f"bench_{label}_{secrets.token_hex(4)}"
    connection = await connect(port)
    try:
        status, envelope = await call(connection, port, "POST", "/api/auth/register",
                                      {"username": name, "email": f"{name}@example.com",
                                       "password": PASSWORD})
        _expect(status, envelope, 201, "register")
        status, envelope = await call(connection, port, "POST", "/api/auth/login",
                                      {"username": name, "password": PASSWORD})
        return _expect(status, envelope, 200, "login")["access_token"]
    finally:
        connection.close()


async def _create_some(port, token, count, out):
    connection = await connect(port)
    try:
        for _ in range(count):
            status, envelope = await call(connection, port, "POST", "/api/conversations/", {},
                                          token)
            out.append(_expect(status, envelope, 201, "create conversation")["id"])
    finally:
        connection.close()


async def conversations(port, token, count, parallel=8):
    """`count` new conversations, one per stream, so that no stream carries a long history."""
    made = []
    shares = [count // parallel + (i < count % parallel) for i in range(parallel)]
    await asyncio.gather(*(_create_some(port, token, share, made) for share in shares if share))
    return made


async def exchanges(port, token, conversation_id, count):
    """`count` question/answer pairs (2 × count messages) through the non-streaming endpoint."""
    connection = await connect(port)
    try:
        for i in range(count):
            status, envelope = await call(connection, port, "POST", "/api/messages/",
                                          {"conversation_id": conversation_id,
                                           "content": f"[[reply:answer {i}]] question {i}",
                                           "tools_enabled": False}, token)
            _expect(status, envelope, 201, "send message")
    finally:
        connection.close()
