"""Token quotas as operators write them (TOKEN_QUOTA, `flask users set-quota`): `<tokens> per
day|week|month`, or `none`. Periods are UTC: a day from midnight, a week from Monday, a month
from its first day. Imports nothing of the app: config.py checks TOKEN_QUOTA with it."""
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

PERIODS = ("day", "week", "month")
QUOTA_TEXT = re.compile(r"([0-9]{1,15})\s*(?:per|/)\s*(day|week|month)", re.IGNORECASE)
NO_QUOTA = ("none", "off", "unlimited")


@dataclass(frozen=True)
class Quota:
    limit: int
    period: str

    def __str__(self):
        return f"{self.limit} per {self.period}"

    def start(self, now):
        """The first day of the period `now` is in (UTC)."""
        today = now.astimezone(timezone.utc).date()
        if self.period == "week":
            return today - timedelta(days=today.weekday())
        if self.period == "month":
            return today.replace(day=1)
        return today

    def resets_at(self, now):
        start = self.start(now)
        if self.period == "day":
            following = start + timedelta(days=1)
        elif self.period == "week":
            following = start + timedelta(days=7)
        else:
            following = (start + timedelta(days=32)).replace(day=1)
        return datetime.combine(following, time(), timezone.utc)


def parse_quota(text):
    """A Quota, or None for `none`; ValueError, saying what is accepted, otherwise."""
    cleaned = " ".join(str(text).split())
    if cleaned.lower() in NO_QUOTA:
        return None
    match = QUOTA_TEXT.fullmatch(cleaned)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"{text!r} is not a token quota: write it as `<tokens> per "
                         f"day|week|month` (e.g. `200000 per day`), or `none`")
    return Quota(int(match.group(1)), match.group(2).lower())


def token_quota_setting(value):
    """TOKEN_QUOTA as read: a Quota or None (a test may pass either already)."""
    if value is None or isinstance(value, Quota):
        return value
    try:
        return parse_quota(value)
    except ValueError as error:
        raise ValueError(f"TOKEN_QUOTA: {error}") from None
