"""Titles made by the model (docs/API.md §3, "Titles"). A conversation's first message gets an
automatic title from its first words at once (chat.ask_new); alongside its first answer, a
thread of its own asks TITLE_MODEL for a better one, which replaces the automatic title unless
the user chose one meanwhile. The answer never waits for it: the title reaches the answer's
stream with its next event, and a title call that fails or is slow leaves the automatic title.
The call is counted in the user's usage like any other."""
import logging
import re
import threading
import unicodedata

from sqlalchemy import bindparam, update

from ..errors import ApiError
from ..extensions import db
from ..models import Conversation
from ..models.conversation import DEFAULT_TITLE
from . import usage

log = logging.getLogger(__name__)

TITLE_CHARS = 30
# The beginning of a long first message says what it is about.
PROMPT_CHARS = 2000
MAX_TOKENS = 100
TEMPERATURE = 0.3
INSTRUCTION = (
    "Write a title for a conversation that begins with the user's message below: at most "
    f"{TITLE_CHARS} characters, in the language of that message. Reply with the title alone, "
    "without quotes, labels or a final full stop.")
# What models wrap a title in despite being asked not to.
LABEL = re.compile(r"^(title|标题|題名|タイトル)\s*[:：]\s*", re.IGNORECASE)
WRAPPING = "\"'`*#“”‘’「」『』《》【】"
TRAILING = "。.!！?？,，;；:："


def automatic_title(content):
    """The first version's title: the first words of the first message."""
    line = " ".join(content.split())
    return line[:TITLE_CHARS] or DEFAULT_TITLE


def cleaned(text):
    """The title in what the model wrote: its first line, without a label, wrapping quotes,
    control characters or a final stop, at most TITLE_CHARS; None when nothing is left."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return None
    title = lines[0]
    # Printable text holds no character of category C (str.isprintable's definition).
    if not title.isprintable():
        title = "".join(character for character in title
                        if not unicodedata.category(character).startswith("C"))
    title, previous = " ".join(title.split()), None
    # Labels and wrappings nest (`Title: **"..."**`): peeled until nothing changes.
    while title != previous:
        previous = title
        title = LABEL.sub("", title.strip(WRAPPING + " ").rstrip(TRAILING))
    return title[:TITLE_CHARS].strip() or None


def prompt(content):
    return [{"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": content[:PROMPT_CHARS]}]


def start(app, exchange, glm, meter):
    """Ask for the title of the exchange's conversation in a thread of its own."""
    threading.Thread(target=make, args=(app, exchange, glm, meter), daemon=True).start()


def make(app, exchange, glm, meter):
    config = app.config
    messages = prompt(exchange.user_message.content)
    call = usage.ProviderCall(config["TITLE_MODEL"], messages, None)
    try:
        text, call.usage = glm.complete(
            model=config["TITLE_MODEL"], messages=messages, temperature=TEMPERATURE,
            max_tokens=MAX_TOKENS, timeout=config["TITLE_TIMEOUT"])
    except ApiError as error:  # refused or unanswered: nothing billed, the automatic title stays
        log.info("no title for conversation %s: %s %s", exchange.conversation_id,
                 type(error).__name__, error.details)
        return
    except Exception:
        log.exception("no title for conversation %s", exchange.conversation_id)
        return
    call.written.append(text)
    call.end()
    title = cleaned(text)
    with app.app_context():
        try:
            replaced = store(exchange, title, call, meter)
        except Exception:
            db.session.rollback()
            log.exception("the title of conversation %s was not stored", exchange.conversation_id)
            return
    if replaced:
        exchange.side_events.append(
            ("title", {"conversation_id": exchange.conversation_id, "title": title}))


CONVERSATIONS = Conversation.__table__
# Built once: every conversation's first answer runs it.
TITLE_IF_AUTOMATIC = (
    update(CONVERSATIONS)
    .where(CONVERSATIONS.c.id == bindparam("conversation_id"),
           CONVERSATIONS.c.title_by_user.is_(False),
           CONVERSATIONS.c.title == bindparam("automatic_title"))
    .values(title=bindparam("title"), updated_at=CONVERSATIONS.c.updated_at))


def store(exchange, title, call, meter):
    """Count the call; set the title while the automatic one is still there (not renamed, not
    deleted since). Not activity: `updated_at` stays. True when the title was set."""
    spent = usage.record_calls(exchange.user_id, exchange.conversation_id,
                               exchange.assistant_message_id, [call])
    meter.add(exchange.user_id, spent)
    replaced = False
    if title is not None:
        result = db.session.connection().execute(TITLE_IF_AUTOMATIC, {
            "conversation_id": exchange.conversation_id,
            "automatic_title": exchange.automatic_title, "title": title})
        replaced = result.rowcount == 1
    db.session.commit()
    meter.added(exchange.user_id, spent)
    return replaced
