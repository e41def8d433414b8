"""Big conversations as rows for `insert(Message)`: one linear, one of many branches. The
query-plan test and the bench write them straight into the database (a thousand messages in
a moment; through the API that would take minutes, and no endpoint branches yet)."""
from datetime import timedelta

from chatapi.models.message import new_message_id


def chain(conversation_id, parent_id, depth, count, start, rows):
    """`count` messages, each the child of the one before, from `depth` (user at even depths,
    assistant at odd ones), each a second newer than every row before it; their ids."""
    ids = []
    for at in range(depth, depth + count):
        ids.append(new_message_id())
        rows.append({"id": ids[-1], "conversation_id": conversation_id, "parent_id": parent_id,
                     "role": "assistant" if at % 2 else "user", "content": f"message {at}",
                     "status": "completed", "tool_calls": [],
                     "created_at": start + timedelta(seconds=len(rows))})
        parent_id = ids[-1]
    return ids


def linear(conversation_id, count, start):
    """(rows, the branch's ids root first)."""
    rows = []
    return rows, chain(conversation_id, None, 0, count, start, rows)


def branched(conversation_id, count, branches, start, fork_length=5):
    """A trunk, then `branches` - 1 forks of `fork_length` messages off it at depths spread
    along it, each a new version of the trunk's message there (an edited question or a
    regenerated answer), written after the trunk: `count` messages and `branches` leaves.
    (rows, the deepest fork's branch root first: its trunk, then the fork)."""
    rows = []
    trunk = chain(conversation_id, None, 0, count - (branches - 1) * fork_length, start, rows)
    for fork in range(1, branches):
        depth = fork * len(trunk) // branches
        branch = trunk[:depth] + chain(conversation_id, trunk[depth - 1], depth, fork_length,
                                       start, rows)
    return rows, branch
