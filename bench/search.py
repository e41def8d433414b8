"""Search, weighed (`make bench SEARCH=1`): 200,000 messages over 200 users (20 conversations
of 50 messages each; mixed Chinese and English text, words drawn with Zipf-like frequencies,
answers longer than questions), written with Core bulk inserts into a migrated database so
that the database's own index upkeep (SQLite's triggers, PostgreSQL's GIN indexes) runs as it
would; then one user's searches, timed in this process as the service runs them
(services.search.search: the queries and the snippets, no HTTP), one page of 20 each. Target:
p95 ≤ 50 ms for every kind of query."""
import random
import statistics
import time
from datetime import timedelta

import flask_migrate
from sqlalchemy import insert, text, update

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import Conversation, Message, User
from chatapi.models.timestamps import utcnow
from chatapi.services import search as search_service

USERS = 200
CONVERSATIONS = 20
MESSAGES = 50
SEARCHES = 60
TARGET_MS = 50
BATCH = 5000
# A streamed answer's row is rewritten about once a second (answers.CONTENT_SECONDS) with the
# whole text so far: this many rewrites, each REWRITE_GROWTH characters longer.
REWRITES = 100
REWRITE_GROWTH = 100

# Common Chinese characters: two-character words are drawn from pairs of them.
HANZI = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也"
         "能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现"
         "实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表"
         "间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系")
ENGLISH = ("the be to of and a in that have it for not on with as you do at this but by from they "
           "we say her she or an will my one all would there their what so up out if about who get "
           "which go me when make can like time no just him know take people into year your good "
           "some could them see other than then now look only come its over think also back after "
           "use two how our work first well way even new want because any these give day most us "
           "python query index server model error cache thread latency function database deploy "
           "network memory request response token stream search trigram postgres sqlite gunicorn "
           "flask schema migration cursor snippet kernel socket buffer compiler library").split()
QUERIES = [
    ("ASCII word, common", "python"),
    ("ASCII word, rare", "kubernetes"),
    ("Chinese, 2 characters (the newest 5,000 scanned)", "数据"),
    ("Chinese, 4 characters", "机器学习"),
    ("no match", "不存在的词组xyz"),
]
# Planted where the queries above must find something beyond chance.
PLANTED = ["机器学习", "数据", "python"]


def zipf_choice(rng, words, exponent=1.1):
    weights = [1 / (rank + 1) ** exponent for rank in range(len(words))]
    return lambda count: rng.choices(words, weights, k=count)


def message_text(rng, zh_words, en_words, tokens):
    parts = []
    for _ in range(tokens // 6 + 1):
        if rng.random() < 0.65:
            parts.append("".join(zh_words(rng.randint(3, 8))) + rng.choice("，。！？"))
        else:
            parts.append(" " + " ".join(en_words(rng.randint(3, 8))) + rng.choice(".,!?") + " ")
    if rng.random() < 0.05:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(PLANTED))
    if rng.random() < 0.002:
        parts.insert(rng.randrange(len(parts) + 1), " kubernetes ")
    return "".join(parts).strip()


def seed(app, log):
    rng = random.Random(20261206)
    pairs = [HANZI[i] + HANZI[j] for i in range(0, len(HANZI) - 1, 2)
             for j in range(1, len(HANZI), 7)]
    rng.shuffle(pairs)
    zh_words, en_words = zipf_choice(rng, pairs), zipf_choice(rng, ENGLISH)
    start = utcnow() - timedelta(days=365)
    with app.app_context():
        prefix = f"s{time.time_ns() % 10**8}"
        db.session.execute(insert(User), [
            {"username": f"{prefix}u{n}", "username_key": f"{prefix}u{n}",
             "email": f"{prefix}u{n}@example.com", "password_hash": "x", "role": "user",
             "is_active": True, "created_at": start} for n in range(USERS)])
        user_ids = db.session.scalars(text(
            "SELECT id FROM users WHERE username LIKE :p ORDER BY id"), {"p": f"{prefix}u%"}).all()
        conversations = [
            {"id": f"conv_{prefix}_{user}_{c:02d}", "user_id": user, "model": "glm-5",
             "title": "".join(zh_words(2)) + " " + " ".join(en_words(2)),
             "created_at": start + timedelta(minutes=c), "updated_at": start}
            for user in user_ids for c in range(CONVERSATIONS)]
        db.session.execute(insert(Conversation), conversations)
        db.session.commit()
        log(f"search bench: {USERS} users, {len(conversations)} conversations; "
            f"writing {len(conversations) * MESSAGES:,} messages")
        rows, written, began = [], 0, time.perf_counter()
        for number, conversation in enumerate(conversations):
            for m in range(MESSAGES):
                answer = m % 2 == 1
                rows.append({
                    "id": f"msg_{prefix}_{number}_{m:02d}", "conversation_id": conversation["id"],
                    "role": "assistant" if answer else "user",
                    "content": message_text(rng, zh_words, en_words,
                                            rng.randint(60, 300) if answer else
                                            rng.randint(8, 40)),
                    "status": "completed", "tool_calls": [],
                    "created_at": start + timedelta(minutes=number, seconds=m)})
            if len(rows) >= BATCH:
                db.session.execute(insert(Message), rows)
                db.session.commit()
                written += len(rows)
                rows = []
        if rows:
            db.session.execute(insert(Message), rows)
            db.session.commit()
            written += len(rows)
        seconds = time.perf_counter() - began
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("ANALYZE messages"))
            db.session.execute(text("ANALYZE conversations"))
            db.session.commit()
        characters = db.session.scalar(text("SELECT sum(length(content)) FROM messages"))
        return user_ids[len(user_ids) // 2], {"messages": written, "seconds": seconds,
                                              "characters": characters}


def weigh(database_url, log):
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url, "JWT_SECRET_KEY": "b" * 64,
                      "LOG_LEVEL": "WARNING", "DB_STATEMENT_TIMEOUT": 0})
    with app.app_context():
        flask_migrate.upgrade()
    user_id, seeded = seed(app, log)
    log(f"search bench: seeded in {seeded['seconds']:.0f} s; {SEARCHES} searches per query")
    figures = []
    with app.app_context():
        for label, q in QUERIES:
            times, found = [], None
            for attempt in range(SEARCHES + 3):
                began = time.perf_counter()
                page = search_service.search(user_id, q, 20)
                elapsed = time.perf_counter() - began
                db.session.remove()  # as a request ends: the next one starts afresh
                if attempt >= 3:  # the first ones warm the caches and compiled statements
                    times.append(elapsed)
                found = len(page["items"])
            times.sort()
            share = db.session.scalar(text(
                "SELECT avg(CASE WHEN lower(content) LIKE :p THEN 1.0 ELSE 0 END) "
                "FROM messages"), {"p": f"%{q.lower()}%"})
            figures.append({"label": label, "q": q, "found": found, "share": float(share),
                            "p50": statistics.median(times),
                            "p95": times[int(0.95 * (len(times) - 1))]})
    with app.app_context():
        upkeep = rewrites(user_id)
        db.engine.dispose()
    return {"seeded": seeded, "queries": figures, "upkeep": upkeep}


def rewrites(user_id):
    """Mean time of one rewrite of a growing answer (as a stream writes it), while it is in
    progress (left out of the index) and, for comparison, had it been indexed at every
    rewrite (a completed message's content rewritten the same way); and of the final write."""
    conversation_id = db.session.scalar(text(
        "SELECT id FROM conversations WHERE user_id = :u LIMIT 1"), {"u": user_id})
    words = "流式回答 streaming answer 的内容，一点一点变长。"
    body = (words * (REWRITES * REWRITE_GROWTH // len(words) + 1))
    figures = {}
    for label, status in (("in progress (not indexed)", "in_progress"),
                          ("indexed at every rewrite", "completed")):
        answer_id = f"msg_upkeep_{status}_{time.time_ns() % 10**9}"
        db.session.execute(insert(Message).values(
            id=answer_id, conversation_id=conversation_id, role="assistant", content="",
            status=status, tool_calls=[], created_at=utcnow()))
        db.session.commit()
        began = time.perf_counter()
        for n in range(1, REWRITES + 1):
            db.session.execute(update(Message).where(Message.id == answer_id)
                               .values(content=body[:n * REWRITE_GROWTH]))
            db.session.commit()
        figures[label] = (time.perf_counter() - began) / REWRITES
        if status == "in_progress":
            began = time.perf_counter()
            db.session.execute(update(Message).where(Message.id == answer_id)
                               .values(status="completed"))
            db.session.commit()
            figures["the end (indexed once)"] = time.perf_counter() - began
    return figures


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def rows(results):
    return [(f"{f['label']} «{f['q']}», in {f['share']:.1%} of all messages", str(f["found"]),
             ms(f["p50"]), ms(f["p95"]),
             f"≤ {TARGET_MS} ms" + ("" if f["p95"] * 1000 <= TARGET_MS else " ✗"))
            for f in results["queries"]]


def upkeep_rows(results):
    return [(name, ms(seconds)) for name, seconds in results["upkeep"].items()]


def table(results):
    seeded = results["seeded"]
    return "\n".join(
        [f"Search: {seeded['messages']:,} messages ({seeded['characters']:,} characters), "
         f"written in {seeded['seconds']:.0f} s",
         f"  {'query':<80} {'found':>5} {'p50':>9} {'p95':>9}  target"]
        + [f"  {name:<80} {found:>5} {p50:>9} {p95:>9}  {target}"
           for name, found, p50, p95, target in rows(results)]
        + [f"Streamed answer's row, {REWRITES} rewrites growing to "
           f"{REWRITES * REWRITE_GROWTH:,} characters (mean per rewrite; the end once):"]
        + [f"  {name:<80} {value:>9}" for name, value in upkeep_rows(results)])


def markdown(results, meta):
    seeded = results["seeded"]
    return "\n".join([
        f"## Search, {meta['database']}", "",
        f"{meta['date']}; {meta['nproc']} cores, Python {meta['python']}, database "
        f"{meta['database']}. {seeded['messages']:,} messages ({seeded['characters']:,} "
        f"characters, mixed Chinese and English) over {USERS} users, written with Core bulk "
        f"inserts in {seeded['seconds']:.0f} s (index upkeep included); then one user's "
        f"searches (~{CONVERSATIONS * MESSAGES:,} messages of their own), a page of 20, each "
        f"kind {SEARCHES} times, timed in-process around services.search.search (queries and "
        "snippets; no HTTP).", "",
        "| query | found | p50 | p95 | target |", "|---|---|---|---|---|",
        *(f"| {name} | {found} | {p50} | {p95} | {target} |"
          for name, found, p50, p95, target in rows(results)), "",
        f"A streamed answer's row is rewritten about once a second with its whole text: "
        f"{REWRITES} rewrites growing by {REWRITE_GROWTH} characters to "
        f"{REWRITES * REWRITE_GROWTH:,}, mean time of one (update and commit), and of the "
        "final write that ends it:", "",
        "| the row | time |", "|---|---|",
        *(f"| {name} | {value} |" for name, value in upkeep_rows(results))])
