"""Deleting an account with everything it owns: the user's own (DELETE /api/auth/me) and an
operator's (`flask users delete`)."""
from sqlalchemy import delete, select

from ..extensions import db
from ..models import Conversation, Message, User


def delete_account(user, answers):
    """Stop the account's answers being written, wherever they run (their writers would
    otherwise go on for an account that is gone); then, in one transaction, remove the account
    with its conversations, their messages and its Idempotency-Keys (the database's cascades)
    and the kept events of its ended answers (`answers.store`). Its tokens fail from then on:
    they name no account. A failure removes nothing."""
    user_id = user.id  # stopping an answer run elsewhere closes the session
    for answer_id in answer_ids_of(user_id, Message.status == "in_progress"):
        answers.stop(answer_id)
    try:
        answers.store.forget(answer_ids_of(user_id, Message.role == "assistant"))
        # "evaluate": the account's object leaves the session too, so that nothing of this
        # session (a token check, say) still finds it.
        db.session.execute(delete(User).where(User.id == user_id)
                           .execution_options(synchronize_session="evaluate"))
        answers.store.commit()
    except Exception:
        answers.store.rollback()
        raise


def answer_ids_of(user_id, condition):
    return db.session.scalars(
        select(Message.id).join(Conversation, Message.conversation_id == Conversation.id)
        .where(Conversation.user_id == user_id, condition)).all()
