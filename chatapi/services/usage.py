"""What the model cost (docs/API.md §9, "Usage"): a row for every call the provider answered —
each round of an answer, tool rounds and regenerations included, and calls cut off by a stop,
a failure or a hang-up — with the tokens the provider reported, or an estimate, marked so, when
the stream ended before it reported them. The rows are stored with the answer's end, and the
user's counter for the day (services/quotas.py) grows with them in the same transaction."""
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import bindparam, distinct, func, select

from ..errors import ValidationFailed
from ..extensions import db
from ..models import UsageRecord, User
from ..models.timestamps import utcnow

TOKEN_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
GROUPS = ("day", "model", "conversation", "user")
DEFAULT_DAYS = 30


def estimated_tokens(text):
    """A rough count for a stream the provider cut before it said: English runs about four
    characters a token, Chinese and other scripts closer to one and a half."""
    ascii_chars = sum(1 for character in text if character < "\x80")
    return math.ceil(ascii_chars / 4 + (len(text) - ascii_chars) / 1.6)


@dataclass(eq=False)
class ProviderCall:
    """One call of an answer to the model, from the moment the provider answered it."""

    model: str
    prompt: list  # the messages sent (estimates only)
    tools: list | None
    written: list = field(default_factory=list)  # what the model wrote back (estimates only)
    usage: dict | None = None
    estimated: bool = False
    ended_at: object = None

    def end(self):
        """Once its stream is over, however it ended."""
        self.ended_at = utcnow()
        if self.usage is None:
            sent = json.dumps([self.prompt, self.tools], ensure_ascii=False)
            prompt, completion = estimated_tokens(sent), estimated_tokens("".join(self.written))
            self.estimated = True
            self.usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}


def record(exchange, account_known=False):
    """Add the rows of the exchange's calls to the transaction that stores its end; what the
    user spent, {day: tokens}. Nothing for an account deleted meanwhile (`account_known`: the
    caller knows it exists)."""
    return record_calls(exchange.user_id, exchange.conversation_id,
                        exchange.assistant_message_id, exchange.provider_calls, account_known)


INSERT_USAGE = UsageRecord.__table__.insert()
ACCOUNT_EXISTS = select(User.id).where(User.id == bindparam("user_id"))


def record_calls(user_id, conversation_id, message_id, provider_calls, account_known=False):
    """Add a row for each of the calls that ended to the caller's transaction; what the user
    spent, {day: tokens}."""
    calls = [call for call in provider_calls if call.ended_at is not None]
    if not calls or (not account_known and db.session.connection().execute(
            ACCOUNT_EXISTS, {"user_id": user_id}).first() is None):
        return {}
    rows = [{"user_id": user_id, "conversation_id": conversation_id,
             "message_id": message_id, "model": call.model,
             **{key: call.usage[key] for key in TOKEN_KEYS}, "estimated": call.estimated,
             "created_at": call.ended_at, "day": call.ended_at.date()} for call in calls]
    db.session.connection().execute(INSERT_USAGE, rows)
    spent = Counter()
    for row in rows:
        spent[row["day"]] += row["total_tokens"]
    return dict(spent)


def date_range(first=None, last=None):
    """The days a report covers: `last` defaults to today (UTC), `first` to the 30 days that
    end on `last`."""
    last = last or utcnow().date()
    # The first days of year 1 have no 30 days before them.
    first = first or last - timedelta(days=min(DEFAULT_DAYS - 1, (last - date.min).days))
    if first > last:
        raise ValidationFailed(details={"from": [f"Must not be after `to` ({last})."]})
    return first, last


def report(group_by, first, last, user_id=None):
    """Totals per group of the rows from day `first` to day `last` (inclusive): [{key,
    prompt_tokens, completion_tokens, total_tokens, messages}] ordered by key, and the total.
    `messages`: the answers the calls were made for."""
    column = {"day": UsageRecord.day, "model": UsageRecord.model,
              "conversation": UsageRecord.conversation_id, "user": User.username}[group_by]
    sums = [func.coalesce(func.sum(getattr(UsageRecord, key)), 0).label(key)
            for key in TOKEN_KEYS]
    answers = func.count(distinct(UsageRecord.message_id)).label("messages")
    where = [UsageRecord.day >= first, UsageRecord.day <= last]
    if user_id is not None:
        where.append(UsageRecord.user_id == user_id)
    grouped = select(column.label("key"), *sums, answers).where(*where).group_by(column) \
        .order_by(column)
    total = select(*sums, answers).where(*where)
    if group_by == "user":
        grouped = grouped.join(User, User.id == UsageRecord.user_id)
    groups = [dict(row._mapping) for row in db.session.execute(grouped)]
    for group in groups:
        if isinstance(group["key"], date):
            group["key"] = group["key"].isoformat()
    return groups, dict(db.session.execute(total).one()._mapping)
